// How a primer's products are computed and augmented: one engine per
// primer kind (SQL on the daemon's compute connection, primers/sql_engine.h;
// Python in the supervised worker, listener/python_engine.h; more kinds will
// come). The executor picks the engine by the primer and never asks which
// kind it is.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "common/task.h"
#include "primers/registry.h"

namespace kck {

// A product computed from scratch.
struct Computed {
  std::optional<std::string> value;     // JSON text
  std::optional<std::string> snapshot;  // pg_snapshot text of what the compute read
  double ms = 0;
  bool gone = false;  // the compute found nothing: the product does not exist
};

// One source row change as an augment sees it.
struct ChangeImage {
  std::string table;
  char op = 'U';
  std::optional<std::string> old_row, new_row;  // JSON objects
};

class Engine {
 public:
  virtual ~Engine() = default;
  // The product of `key`. A failure is the primer's own unless transient.
  virtual Task<StatusOr<Computed>> Compute(const Primer& primer, const std::string& key) = 0;
  // `current` (JSON text) with `change` applied; nullopt when the primer
  // declines (the key is recomputed, and that is not a failure).
  virtual Task<StatusOr<std::optional<std::string>>> Augment(const Primer& primer, const std::string& key,
                                                             const ChangeImage& change,
                                                             const std::string& current) = 0;
  // `current` with `changes` applied in order (nullopt: declined). By
  // default one Augment after the other; an engine may do them at once.
  virtual Task<StatusOr<std::optional<std::string>>> AugmentAll(const Primer& primer, const std::string& key,
                                                                std::vector<ChangeImage> changes,
                                                                std::string current) {
    for (const ChangeImage& change : changes) {
      auto next = co_await Augment(primer, key, change, current);
      if (!next.ok() || !*next) co_return next;
      current = std::move(**next);
    }
    co_return std::optional<std::string>(std::move(current));
  }
};

}  // namespace kck
