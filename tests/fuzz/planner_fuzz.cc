// Fuzzes the change-payload parser and the planner (listener/planner.h):
// claimed kck.changes rows, as arbitrary bytes, against a small fixed
// registry.
//
// Input: one change per line, fields separated by tabs:
//   tbl <TAB> op <TAB> old <TAB> new <TAB> txid
// (missing fields are empty; op is the field's first byte, 'U' when empty;
// old/new are JSON text, empty for NULL). Seeds in corpus/planner/ are
// real payloads: single-row images, bulk arrays, product and refresh rows.
//
// RowPairs and PlanChanges must never crash or throw, and the plan must
// hold what the executor relies on: canonical keys of the primer they name,
// change indexes in range and ascending, partial matches as long as the
// primer's parameters, keys queries that name a keys rule. Every row image
// handed on must also parse with nlohmann::json (the executor parses them
// again, with exceptions, to build keys and augment requests).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "listener/planner.h"
#include "primers/config.h"
#include "primers/registry.h"

namespace {

// Table rules (params with every type, partial params, keys SQL, python
// keys rules, update_of on both kinds), product -> product rules (complete
// and partial) and augment.
constexpr std::string_view kConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT 1",
   "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}, "columns": ["title"]}],
   "augment": {"public.store_book": {"insert": "SELECT :value || jsonb_build_array(:new->'title')",
                                     "update": "SELECT :value", "delete": "SELECT :value - (:old->>'title')"}}},
  {"name": "shelf", "parameters": [{"name": "author_id", "type": "int"}, {"name": "genre", "type": "str"}],
   "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}}]},
  {"name": "by_title", "parameters": [{"name": "title", "type": "str"}],
   "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"title": "title"}}]},
  {"name": "by_day", "parameters": [{"name": "day", "type": "date"}, {"name": "open", "type": "bool"}],
   "compute": "SELECT 1",
   "depends_on": [{"table": "public.store_book", "params": {"day": "published", "open": "in_print"}}]},
  {"name": "all_books", "compute": "SELECT 1",
   "depends_on": [{"table": "public.store_book", "params": {}}, {"table": "public.store_review", "params": {}}]},
  {"name": "author_stats", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT 1",
   "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"},
                   "update_of": ["author_id", "price", "meta"]},
                  {"table": "public.store_review", "keys": "SELECT 'author_stats/' || (:new->>'book_id')",
                   "columns": ["book_id"], "update_of": ["rating"]}]},
  {"name": "stats", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT 1", "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]},
  {"name": "genre_stats", "parameters": [{"name": "author_id", "type": "int"}, {"name": "genre", "type": "str"}],
   "compute": "SELECT 1",
   "depends_on": [{"primer": "shelf", "params": {"genre": "genre"}},
                  {"primer": "by_title", "params": {"genre": "title"}}]},
  {"name": "review_page", "engine": "python", "parameters": [{"name": "book_id", "type": "int"}],
   "depends_on": [{"table": "public.store_review", "params": {"book_id": "book_id"}},
                  {"table": "public.store_book", "python_rule": 1}],
   "augment": true}
]})json";

const kck::Registry& FixedRegistry() {
  static const std::shared_ptr<const kck::Registry> registry = [] {
    auto config = kck::ParseConfig(kConfig, "planner_fuzz");
    if (!config.ok()) {
      std::fprintf(stderr, "planner_fuzz: %s\n", config.status().message().c_str());
      std::abort();
    }
    auto built = kck::Registry::Build(config->primers);
    if (!built.ok()) {
      std::fprintf(stderr, "planner_fuzz: %s\n", built.status().message().c_str());
      std::abort();
    }
    return *built;
  }();
  return *registry;
}

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "planner_fuzz: %s: %s\n", what, kck::QuoteForError(detail).c_str());
  std::abort();
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

std::vector<kck::Change> Changes(std::string_view input) {
  std::vector<kck::Change> changes;
  for (std::string_view line : Split(input, '\n')) {
    std::vector<std::string_view> f = Split(line, '\t');
    f.resize(5);
    kck::Change c;
    c.id = static_cast<long long>(changes.size()) + 1;
    c.tbl = f[0];
    c.op = f[1].empty() ? 'U' : f[1][0];
    c.old_json = f[2];
    c.new_json = f[3];
    c.txid = f[4];
    changes.push_back(std::move(c));
  }
  return changes;
}

// The executor's view of a row image: nlohmann::json::parse with exceptions.
void CheckImage(const std::optional<std::string>& image) {
  if (!image) return;
  auto j = nlohmann::json::parse(*image, nullptr, false);
  if (j.is_discarded()) Fail("a row image that nlohmann::json rejects", *image);
  if (!j.is_object()) Fail("a row image that is not an object", *image);
}

void CheckRowPairs(const kck::Change& change) {
  bool bulk = true;
  auto rows = kck::RowPairs(change, &bulk);
  if (!rows.ok()) {
    if (rows.status().message().empty()) Fail("empty error message", change.new_json);
    return;
  }
  for (const auto& pair : *rows) {
    if (!pair.old_row && !pair.new_row) Fail("a row pair without rows", change.new_json);
    if (bulk && pair.old_row && pair.new_row) Fail("a bulk row pair with both sides", change.new_json);
    CheckImage(pair.old_row);
    CheckImage(pair.new_row);
  }
}

void CheckPlan(const kck::Plan& plan, size_t n) {
  for (const auto& [key, work] : plan.keys) {
    if (work.primer == nullptr) Fail("a key without a primer", key);
    auto values = kck::DecodeKey(key, work.primer->spec.name, work.primer->spec.params);
    if (!values.ok()) Fail("a planned key is not canonical", key);
    if (work.changes.empty()) Fail("a key without changes", key);
    for (size_t i = 0; i < work.changes.size(); ++i) {
      if (work.changes[i] >= n) Fail("a change index out of range", key);
      if (i > 0 && work.changes[i - 1] >= work.changes[i]) Fail("change indexes not ascending", key);
    }
    if (work.force && work.augmentable) Fail("a forced key is augmentable", key);
  }
  for (const auto& m : plan.partial) {
    if (m.primer == nullptr) Fail("a partial match without a primer", "");
    if (m.fixed.size() != m.primer->spec.params.size()) Fail("a partial match of the wrong length", m.primer->spec.name);
    if (m.change >= n) Fail("a change index out of range", m.primer->spec.name);
  }
  for (const auto& q : plan.keys_queries) {
    if (q.primer == nullptr || q.rule >= q.primer->spec.depends_on.size()) Fail("a keys query without a rule", "");
    if (q.primer->spec.depends_on[q.rule].kind != kck::DependsRule::Kind::kTableKeys) {
      Fail("a keys query for a rule without keys", q.primer->spec.name);
    }
    if (q.change >= n) Fail("a change index out of range", q.primer->spec.name);
    if (!q.rows.old_row && !q.rows.new_row) Fail("a keys query without rows", q.primer->spec.name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const kck::Registry& registry = FixedRegistry();
  std::vector<kck::Change> changes = Changes(std::string_view(reinterpret_cast<const char*>(data), size));
  for (const auto& c : changes) CheckRowPairs(c);
  kck::Plan plan = kck::PlanChanges(changes, registry);
  CheckPlan(plan, changes.size());
  return 0;
}
