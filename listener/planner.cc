#include "listener/planner.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>

namespace kck {
namespace {

// Canonical text of a captured column value for a parameter of `type`;
// nullopt when the value is SQL NULL (the row maps to no key).
StatusOr<std::optional<std::string>> ValueText(simdjson::dom::element v, ParamType type) {
  using simdjson::dom::element_type;
  switch (v.type()) {
    case element_type::NULL_VALUE:
      return std::optional<std::string>();
    case element_type::INT64:
      return std::optional<std::string>(std::to_string(int64_t(v)));
    case element_type::UINT64:
      return std::optional<std::string>(std::to_string(uint64_t(v)));
    case element_type::BOOL:
      return std::optional<std::string>(bool(v) ? "true" : "false");
    case element_type::STRING:
      return std::optional<std::string>(std::string(std::string_view(v)));
    case element_type::DOUBLE:
      if (type == ParamType::kStr) return std::optional<std::string>(simdjson::minify(v));
      return Status::Invalid("value " + simdjson::minify(v) + " is not an integer");
    default:
      if (type == ParamType::kStr) return std::optional<std::string>(simdjson::minify(v));
      return Status::Invalid("value " + simdjson::minify(v) + " cannot be a key parameter");
  }
}

}  // namespace

void Plan::AddKey(const std::string& key, const Primer* primer, size_t change, bool row_change, bool force) {
  KeyWork& w = keys[key];
  w.primer = primer;
  // Keys rules resolve after the other rules: a change may come in after a
  // later one, and augments apply them in this order.
  auto at = std::lower_bound(w.changes.begin(), w.changes.end(), change);
  if (at == w.changes.end() || *at != change) w.changes.insert(at, change);
  // Under load one recompute costs less than many augments of one key.
  w.augmentable = w.augmentable && row_change && !force && w.changes.size() <= primer->spec.augment_max_changes;
  w.force = w.force || force;
}

bool WarningLimiter::Allow(const std::string& subject, std::chrono::steady_clock::time_point now) {
  auto it = last_.find(subject);
  if (it != last_.end() && now - it->second < period_) return false;
  last_[subject] = now;
  return true;
}

bool Plan::Matches(const PartialMatch& m, const std::vector<std::string>& values) {
  if (values.size() != m.fixed.size()) return false;
  for (size_t i = 0; i < values.size(); ++i) {
    if (m.fixed[i] && *m.fixed[i] != values[i]) return false;
  }
  return true;
}

StatusOr<std::vector<RowPair>> RowPairs(const Change& change, bool* bulk) {
  std::vector<RowPair> out;
  *bulk = false;
  simdjson::dom::parser parser;
  auto side = [&](const std::string& text, bool is_old) -> Status {
    if (text.empty()) return Status::Ok();
    simdjson::dom::element doc;
    if (parser.parse(text).get(doc)) return Status::Invalid(std::string(is_old ? "old" : "new") + " is not valid JSON");
    if (doc.is_array()) {
      *bulk = true;
      for (auto el : doc.get_array()) {
        if (!el.is_object()) return Status::Invalid("bulk row image is not an object");
        RowPair p;
        (is_old ? p.old_row : p.new_row) = simdjson::minify(el);
        out.push_back(std::move(p));
      }
      return Status::Ok();
    }
    if (!doc.is_object()) return Status::Invalid(std::string(is_old ? "old" : "new") + " is not an object");
    return Status::Ok();
  };
  KCK_RETURN_IF_ERROR(side(change.old_json, true));
  KCK_RETURN_IF_ERROR(side(change.new_json, false));
  if (!*bulk) {
    RowPair p;
    if (!change.old_json.empty()) p.old_row = change.old_json;
    if (!change.new_json.empty()) p.new_row = change.new_json;
    if (p.old_row || p.new_row) out.push_back(std::move(p));
  }
  return out;
}

namespace {

std::string Describe(const Change& c) { return "change " + std::to_string(c.id) + " (" + c.tbl + ")"; }

// Every stored product of `primer`.
PartialMatch AllOf(const Primer* primer, size_t change) {
  return {primer, std::vector<std::optional<std::string>>(primer->spec.params.size()), change};
}

// What a 'T' change's new image says of it: "error", a degraded capture's
// SQL error (see DegradedCapture); "bulk", why a bulk statement is one
// (see WholeTableChange).
void NoteTruncate(const Change& c, Plan& plan) {
  if (c.op != 'T' || c.new_json.empty()) return;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(c.new_json).get(doc)) return;
  std::string_view note;
  if (!doc["error"].get(note)) plan.degraded.push_back({c.tbl, std::string(note)});
  if (!doc["bulk"].get(note)) plan.whole_table.push_back({c.tbl, std::string(note)});
  if (!doc["capture"].get(note)) plan.recaptured.push_back({c.tbl, std::string(note)});
}

// A refresh request for every stored product of a primer ({"primer": P}:
// kck install queues one when it redefines P): listed under P's lock.
bool PlanPrimerRefresh(const Change& c, simdjson::dom::element doc, size_t idx, const Registry& reg, Plan& plan) {
  std::string_view name;
  if (doc["primer"].get(name)) return false;
  const Primer* primer = reg.Find(std::string(name));
  if (primer == nullptr) {
    plan.problems.push_back(Describe(c) + ": unknown primer \"" + std::string(name) + "\"");
  } else {
    PartialMatch all = AllOf(primer, idx);
    all.force = true;  // computed the old way, whenever that was
    plan.partial.push_back(all);
  }
  return true;
}

void PlanRefresh(const Change& c, size_t idx, const Registry& reg, Plan& plan) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view key;
  if (parser.parse(c.new_json).get(doc)) {
    plan.problems.push_back(Describe(c) + ": refresh request without a \"key\"");
    return;
  }
  if (PlanPrimerRefresh(c, doc, idx, reg, plan)) return;
  if (doc["key"].get(key)) {
    plan.problems.push_back(Describe(c) + ": refresh request without a \"key\" or a \"primer\"");
    return;
  }
  auto name = KeyPrimerName(key);
  const Primer* primer = name.ok() ? reg.Find(*name) : nullptr;
  if (!name.ok() || primer == nullptr) {
    plan.problems.push_back(Describe(c) + ": " + (name.ok() ? "unknown primer \"" + *name + "\"" : name.status().message()));
    return;
  }
  auto values = DecodeKey(key, primer->spec.name, primer->spec.params);
  if (!values.ok()) {
    plan.problems.push_back(Describe(c) + ": " + values.status().message());
    return;
  }
  plan.AddKey(std::string(key), primer, idx, false, true);
}

// Products that depend on products: a kck.cache row image names the key and
// primer that changed.
void PlanProductChange(const Change& c, size_t idx, const std::vector<RowPair>& rows, const Registry& reg,
                       Plan& plan) {
  if (c.op == 'T') {  // no image names the products: every dependent product
    for (const auto& p : reg.primers()) {
      for (const auto& rule : p->spec.depends_on) {
        if (rule.kind != DependsRule::Kind::kPrimer) continue;
        plan.partial.push_back(AllOf(p.get(), idx));
        break;
      }
    }
    return;
  }
  simdjson::dom::parser parser;
  for (const auto& pair : rows) {
    for (const auto* image : {&pair.old_row, &pair.new_row}) {
      if (!*image) continue;
      simdjson::dom::element doc;
      std::string_view key, primer_name;
      if (parser.parse(**image).get(doc) || doc["key"].get(key) || doc["primer"].get(primer_name)) {
        plan.problems.push_back(Describe(c) + ": product image without key and primer");
        continue;
      }
      const Primer* source = reg.Find(primer_name);
      if (source == nullptr) continue;
      auto values = DecodeKey(key, source->spec.name, source->spec.params);
      if (!values.ok()) continue;
      for (const RuleRef& ref : reg.RulesForPrimer(primer_name)) {
        const DependsRule& rule = ref.get();
        PartialMatch m{ref.primer, {}, idx};
        bool complete = true;
        for (const auto& p : ref.primer->spec.params) {
          auto it = rule.params.find(p.name);
          if (it == rule.params.end()) {
            m.fixed.emplace_back();
            complete = false;
            continue;
          }
          size_t j = 0;
          while (j < source->spec.params.size() && source->spec.params[j].name != it->second) ++j;
          m.fixed.emplace_back((*values)[j]);
        }
        if (complete) {
          std::vector<std::string> vals;
          for (auto& f : m.fixed) vals.push_back(*f);
          auto k = EncodeKey(ref.primer->spec.name, ref.primer->spec.params, vals);
          if (k.ok()) plan.AddKey(*k, ref.primer, idx, false);
        } else {
          plan.partial.push_back(std::move(m));
        }
      }
    }
  }
}

// Augment is possible only for row changes of a table with augment code.
bool Augmentable(const RuleRef& ref, const Change& c, bool bulk) {
  return !bulk && ref.primer->Augments(c.tbl, c.op);
}

// A column `rule` maps that the change's row images lack. All images of a
// change come from one capture, so the first one tells.
std::optional<std::string> UnmappedColumn(const DependsRule& rule, const std::vector<RowPair>& rows) {
  if (rows.empty()) return std::nullopt;
  const auto& image = rows.front().old_row ? rows.front().old_row : rows.front().new_row;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (!image || parser.parse(*image).get(doc)) return std::nullopt;
  for (const auto& [param, column] : rule.params) {
    if (doc[column].error() == simdjson::NO_SUCH_FIELD) return column;
  }
  return std::nullopt;
}

// The raw JSON of a value: jsonb's own text, so 1.10 and 1.1 differ (they
// may in a product) where a parsed double would merge them.
simdjson::error_code RawValue(simdjson::ondemand::value v, std::string_view* raw) {
  simdjson::ondemand::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::object object;
    if (auto e = v.get_object().get(object)) return e;
    return object.raw_json().get(*raw);
  }
  if (type == simdjson::ondemand::json_type::array) {
    simdjson::ondemand::array array;
    if (auto e = v.get_array().get(array)) return e;
    return array.raw_json().get(*raw);
  }
  *raw = v.raw_json_token();
  while (!raw->empty() && std::isspace(static_cast<unsigned char>(raw->back()))) raw->remove_suffix(1);
  return simdjson::SUCCESS;
}

// The raw JSON of `columns` in a row image (nullopt where absent); nullopt
// for an image it cannot read.
std::optional<std::vector<std::optional<std::string>>> RawColumns(const std::string& image,
                                                                 const std::vector<std::string>& columns) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(image);
  simdjson::ondemand::document doc;
  simdjson::ondemand::object object;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(object)) return std::nullopt;
  std::vector<std::optional<std::string>> out(columns.size());
  for (auto field : object) {
    std::string_view key, raw;
    simdjson::ondemand::value v;
    if (field.unescaped_key().get(key)) return std::nullopt;
    auto at = std::find(columns.begin(), columns.end(), key);
    if (field.value().get(v)) return std::nullopt;
    if (at == columns.end()) continue;  // the iterator skips its value
    if (RawValue(v, &raw)) return std::nullopt;
    out[at - columns.begin()] = std::string(raw);
  }
  return out;
}

// The columns whose change lets an UPDATE reach `rule`'s products: its
// update_of, the columns it maps (a row that moves leaves a product) and,
// for a keys rule, the columns its SQL reads. Empty: every UPDATE does.
std::vector<std::string> UpdateColumns(const DependsRule& rule) {
  if (rule.update_of.empty()) return {};
  std::vector<std::string> out = rule.update_of;
  for (const auto& [param, column] : rule.params) out.push_back(column);
  if (rule.kind == DependsRule::Kind::kTableKeys) out.insert(out.end(), rule.columns.begin(), rule.columns.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());  // RawColumns finds each once
  return out;
}

// Whether a change reaches `rule`'s products: false only for a one-row
// UPDATE whose images agree on every column of UpdateColumns(rule). Bulk
// images are not paired, so they always do; so does an image it cannot read.
bool ReachesRule(const DependsRule& rule, const Change& c, const std::vector<RowPair>& rows, bool bulk) {
  if (rule.update_of.empty() || bulk || c.op != 'U' || rows.size() != 1) return true;
  const RowPair& pair = rows.front();
  if (!pair.old_row || !pair.new_row) return true;
  const std::vector<std::string> columns = UpdateColumns(rule);
  auto old_values = RawColumns(*pair.old_row, columns);
  auto new_values = RawColumns(*pair.new_row, columns);
  if (!old_values || !new_values) return true;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (!(*old_values)[i] || !(*new_values)[i] || *(*old_values)[i] != *(*new_values)[i]) return true;
  }
  return false;
}

void PlanTableChange(const Change& c, size_t idx, const std::vector<RowPair>& rows, bool bulk, const Registry& reg,
                     Plan& plan) {
  simdjson::dom::parser parser;
  for (const RuleRef& ref : reg.RulesForTable(c.tbl)) {
    const DependsRule& rule = ref.get();
    const PrimerSpec& spec = ref.primer->spec;
    if (c.op == 'T') {  // TRUNCATE or a degraded capture: every stored product of the primer
      plan.partial.push_back(AllOf(ref.primer, idx));
      continue;
    }
    if (!ReachesRule(rule, c, rows, bulk)) continue;  // an UPDATE of columns the rule ignores
    const bool row_change = Augmentable(ref, c, bulk);
    if (rule.kind == DependsRule::Kind::kTableKeys) {
      for (const auto& pair : rows) plan.keys_queries.push_back({ref.primer, ref.rule, idx, pair, row_change});
      continue;
    }
    if (auto column = UnmappedColumn(rule, rows)) {  // cannot tell which products: recompute them all
      plan.degraded.push_back({c.tbl, "primer \"" + spec.name + "\": row image has no column \"" + *column + "\""});
      plan.partial.push_back(AllOf(ref.primer, idx));
      continue;
    }
    for (const auto& pair : rows) {
      std::vector<std::string> pair_keys;  // exact keys of the old and new image
      for (const auto* image : {&pair.old_row, &pair.new_row}) {
        if (!*image) continue;
        simdjson::dom::element doc;
        if (parser.parse(**image).get(doc)) {
          plan.problems.push_back(Describe(c) + ": row image is not valid JSON");
          continue;
        }
        std::vector<std::optional<std::string>> fixed;
        bool complete = true, null_param = false;
        std::string problem;
        for (const auto& p : spec.params) {
          auto it = rule.params.find(p.name);
          if (it == rule.params.end()) {
            fixed.emplace_back();
            complete = false;
            continue;
          }
          simdjson::dom::element v;
          if (doc[it->second].get(v)) {
            problem = "row image has no column \"" + it->second + "\"";
            break;
          }
          auto text = ValueText(v, p.type);
          if (!text.ok()) {
            problem = "column \"" + it->second + "\": " + text.status().message();
            break;
          }
          if (!*text) null_param = true;
          fixed.push_back(*text);
        }
        if (!problem.empty()) {
          plan.problems.push_back(Describe(c) + ": primer \"" + spec.name + "\": " + problem);
          continue;
        }
        if (null_param) continue;  // a NULL parameter names no product
        if (!complete) {
          plan.partial.push_back({ref.primer, std::move(fixed), idx});
          continue;
        }
        std::vector<std::string> values;
        for (auto& f : fixed) values.push_back(*f);
        auto key = EncodeKey(spec.name, spec.params, values);
        if (!key.ok()) {
          plan.problems.push_back(Describe(c) + ": " + key.status().message());
          continue;
        }
        pair_keys.push_back(*key);
      }
      // A row that moved between products (author_id 1 -> 2) is recomputed
      // in both: an augment would see a row that is not its own.
      bool moved = pair_keys.size() == 2 && pair_keys[0] != pair_keys[1];
      for (const auto& key : pair_keys) plan.AddKey(key, ref.primer, idx, row_change && !moved);
    }
  }
}

void PlanByTable(const Change& c, size_t idx, const std::vector<RowPair>& rows, bool bulk, const Registry& reg,
                 Plan& plan) {
  if (c.tbl == "kck.cache") {
    PlanProductChange(c, idx, rows, reg, plan);
  } else {
    PlanTableChange(c, idx, rows, bulk, reg, plan);
  }
}

}  // namespace

Plan PlanChanges(const std::vector<Change>& changes, const Registry& reg) {
  Plan plan;
  for (size_t i = 0; i < changes.size(); ++i) {
    const Change& c = changes[i];
    if (c.tbl == "kck.refresh") {
      PlanRefresh(c, i, reg, plan);
      continue;
    }
    NoteTruncate(c, plan);
    if (std::string_view("IUDT").find(c.op) == std::string_view::npos) {
      // The outbox has no check on op (sql/017): what no capture writes is
      // read as a TRUNCATE, never dropped.
      plan.problems.push_back(Describe(c) + ": unknown op '" + std::string(1, c.op) +
                              "'; recomputing every stored product that depends on the table");
      Change truncate = c;
      truncate.op = 'T';
      PlanByTable(truncate, i, {}, false, reg, plan);
      continue;
    }
    bool bulk = false;
    auto rows = RowPairs(c, &bulk);
    if (!rows.ok()) {
      // A row image simdjson cannot read (jsonb writes numerics beyond 64
      // bits and beyond double) still says which table changed: recompute
      // what depends on it rather than lose the change.
      plan.problems.push_back(Describe(c) + ": " + rows.status().message() +
                              "; recomputing every stored product that depends on the table");
      for (const RuleRef& ref : reg.RulesForTable(c.tbl)) plan.partial.push_back(AllOf(ref.primer, i));
      continue;
    }
    PlanByTable(c, i, *rows, bulk, reg, plan);
  }
  return plan;
}

}  // namespace kck
