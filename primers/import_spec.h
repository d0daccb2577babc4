// Remote imports: primers of kind "http" (a URL fetched with libcurl) and
// "command" (a program run without a shell), whose JSON output is the
// product. Their config fields, checked here; fetching is in
// primers/import_fetch.h.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "primers/key_codec.h"

namespace kck {

struct ImportSpec {
  std::string url;                              // http: ":param" placeholders, percent-encoded
  std::vector<std::string> argv;                // command: argv[0] an absolute path; ":param" placeholders
  std::map<std::string, std::string> headers;   // http: a value, or "env:NAME" read from the daemon's environment
  std::chrono::seconds timeout{5};              // each attempt
  int retries = 2;                              // attempts after the first, with backoff and jitter
  size_t max_bytes = 1 << 20;                   // the largest response or output accepted
};

// Whether `engine` (a primer's "kind") is an import.
bool IsImportKind(const std::string& engine);

// The import fields of a primer of kind `engine` into *out; fields of the
// other kind, or placeholders naming no parameter, are errors.
Status ParseImportFields(const nlohmann::json& j, const std::string& engine, const std::vector<ParamSpec>& params,
                         ImportSpec* out);
// The import fields back into a primer's JSON.
void ImportToJson(const ImportSpec& spec, const std::string& engine, nlohmann::json& j);

// `text` with each ":name" of a parameter replaced by escape(value); the
// values are a key's, by name (Primer::KeyValues).
std::string Substitute(const std::string& text, const std::map<std::string, std::optional<std::string>>& values,
                       std::string (*escape)(const std::string&));

}  // namespace kck
