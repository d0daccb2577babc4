// Remote imports in the daemon: primers of kind http and command
// (primers/import_fetch.h), fetched on libuv's thread pool so the loop
// never blocks. An import that fails is the primer's own error (the stored
// value is kept and the error recorded), never a transient one. For http
// it remembers each key's ETag / Last-Modified and last value, so a
// refresh sends a conditional request and a 304 keeps the value.
#pragma once

#include <uv.h>

#include <map>
#include <string>

#include "primers/engine.h"
#include "primers/import_fetch.h"

namespace kck {

class ImportEngine : public Engine {
 public:
  explicit ImportEngine(uv_loop_t* loop) : loop_(loop) {}

  Task<StatusOr<Computed>> Compute(const Primer& primer, const std::string& key) override;
  // Imports are fetched whole: never augmented.
  Task<StatusOr<std::optional<std::string>>> Augment(const Primer&, const std::string&, const ChangeImage&,
                                                     const std::string&) override {
    co_return std::optional<std::string>();
  }

 private:
  struct Remembered {
    Validators validators;
    std::string json;
  };
  uv_loop_t* loop_;
  std::map<std::string, Remembered> remembered_;  // by key; bounded (cleared past 10 000 keys)
};

}  // namespace kck
