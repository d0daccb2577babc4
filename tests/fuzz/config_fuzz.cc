// Fuzzes the primer config parser (primers/config.h) with arbitrary bytes.
//
// ParseConfig must return a Status for any input: no exception, no crash,
// no hang. A config it accepts must also:
//  - survive the trip through kck.primers: PrimerToJson, dump, parse,
//    ParsePrimer gives the same spec, field by field, and the same dump
//    (the installer compares these dumps to decide that a primer is
//    unchanged, and the daemon reads the specs back);
//  - compile into a Registry or fail with a Status.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "primers/config.h"
#include "primers/registry.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "config_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// What is lost on the way through kck.primers, or "" when nothing is.
std::string Difference(const kck::PrimerSpec& a, const kck::PrimerSpec& b) {
  if (a.name != b.name) return "name";
  if (a.params.size() != b.params.size()) return "parameters";
  for (size_t i = 0; i < a.params.size(); ++i) {
    if (a.params[i].name != b.params[i].name || a.params[i].type != b.params[i].type) return "parameters";
  }
  if (a.engine != b.engine) return "engine";
  if (a.compute != b.compute) return "compute";
  if (a.source != b.source) return "source";
  if (a.depends_on.size() != b.depends_on.size()) return "depends_on";
  for (size_t i = 0; i < a.depends_on.size(); ++i) {
    const kck::DependsRule& x = a.depends_on[i];
    const kck::DependsRule& y = b.depends_on[i];
    std::string where = "depends_on[" + std::to_string(i) + "].";
    if (x.kind != y.kind) return where + "kind";
    if (x.table != y.table) return where + "table";
    if (x.primer != y.primer) return where + "primer";
    if (x.params != y.params) return where + "params";
    if (x.keys_sql != y.keys_sql) return where + "keys";
    if (x.columns != y.columns) return where + "columns";
    if (x.python_rule != y.python_rule) return where + "python_rule";
  }
  if (a.augment.size() != b.augment.size()) return "augment";
  for (const auto& [table, sql] : a.augment) {
    auto it = b.augment.find(table);
    if (it == b.augment.end() || it->second.insert_sql != sql.insert_sql || it->second.update_sql != sql.update_sql ||
        it->second.delete_sql != sql.delete_sql) {
      return "augment." + table;
    }
  }
  if (a.python_augment != b.python_augment) return "augment";
  if (a.refresh_every != b.refresh_every) return "refresh_every";
  if (a.soft_expire != b.soft_expire) return "soft_expire";
  if (a.hard_expire != b.hard_expire) return "hard_expire";
  return "";
}

void CheckMessage(const kck::Status& status) {
  if (status.message().empty()) Fail("empty error message", "");
  if (status.message().rfind("fuzz.json: ", 0) != 0) Fail("error message does not start with the origin", status.message());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = kck::ParseConfig(text, "fuzz.json");
  if (!config.ok()) {
    CheckMessage(config.status());
    return 0;
  }
  for (const auto& spec : config->primers) {
    nlohmann::json stored = kck::PrimerToJson(spec);
    std::string dumped = stored.dump();
    auto again = kck::ParsePrimer(nlohmann::json::parse(dumped));
    if (!again.ok()) Fail("a stored primer does not parse back", again.status().message() + " in " + dumped);
    std::string lost = Difference(spec, *again);
    if (!lost.empty()) Fail("a stored primer loses a field", lost + " in " + dumped);
    std::string dumped_again = kck::PrimerToJson(*again).dump();
    if (dumped_again != dumped) Fail("a stored primer changes on the way back", dumped + " became " + dumped_again);
  }
  auto registry = kck::Registry::Build(config->primers);
  if (!registry.ok() && registry.status().message().empty()) Fail("empty error message", "");
  return 0;
}
