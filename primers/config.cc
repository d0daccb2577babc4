#include "primers/config.h"

#include <functional>
#include <set>

#include "common/quote.h"
#include "primers/period.h"

namespace kck {
namespace {

using json = nlohmann::json;

Status CheckFields(const json& j, std::string_view where, const std::set<std::string>& allowed) {
  if (!j.is_object()) return Status::Invalid(std::string(where) + ": expected an object");
  for (const auto& [k, v] : j.items()) {
    if (!allowed.count(k)) return Status::Invalid(std::string(where) + ": unknown field " + QuoteForError(k));
  }
  return Status::Ok();
}

StatusOr<std::string> GetString(const json& j, const std::string& field, bool required) {
  auto it = j.find(field);
  if (it == j.end()) {
    if (required) return Status::Invalid("missing field " + QuoteForError(field));
    return std::string();
  }
  if (!it->is_string()) return Status::Invalid("field " + QuoteForError(field) + " must be a string");
  return it->get<std::string>();
}

StatusOr<std::optional<std::chrono::seconds>> GetPeriod(const json& j, const std::string& field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::optional<std::chrono::seconds>();
  if (!it->is_string()) return Status::Invalid("field " + QuoteForError(field) + " must be a period string such as \"10m\"");
  auto p = ParsePeriod(it->get<std::string>());
  if (!p.ok()) return p.status().WithContext(field);
  return std::optional<std::chrono::seconds>(*p);
}

StatusOr<std::map<std::string, std::string>> GetStringMap(const json& j, const std::string& field) {
  std::map<std::string, std::string> out;
  auto it = j.find(field);
  if (it == j.end()) return out;
  if (!it->is_object()) return Status::Invalid("field " + QuoteForError(field) + " must be an object");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return Status::Invalid(field + "." + k + ": must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

// An optional array of column names (empty when absent).
StatusOr<std::vector<std::string>> GetColumnNames(const json& j, const std::string& field) {
  std::vector<std::string> out;
  auto it = j.find(field);
  if (it == j.end()) return out;
  auto bad = Status::Invalid("field " + QuoteForError(field) + " must be an array of column names");
  if (!it->is_array()) return bad;
  for (const auto& c : *it) {
    if (!c.is_string() || c.get<std::string>().empty()) return bad;
    out.push_back(c.get<std::string>());
  }
  return out;
}

StatusOr<DependsRule> ParseRule(const json& j, const PrimerSpec& spec) {
  KCK_RETURN_IF_ERROR(
      CheckFields(j, "rule", {"table", "primer", "params", "keys", "columns", "update_of", "python_rule"}));
  DependsRule rule;
  auto table = GetString(j, "table", false);
  if (!table.ok()) return table.status();
  auto primer = GetString(j, "primer", false);
  if (!primer.ok()) return primer.status();
  auto keys = GetString(j, "keys", false);
  if (!keys.ok()) return keys.status();
  auto params = GetStringMap(j, "params");
  if (!params.ok()) return params.status();
  rule.table = *table;
  rule.primer = *primer;
  rule.keys_sql = *keys;
  rule.params = *params;
  if (auto it = j.find("python_rule"); it != j.end()) {
    if (!it->is_number_integer()) return Status::Invalid("field \"python_rule\" must be an integer");
    rule.python_rule = it->get<int>();
  }
  auto columns = GetColumnNames(j, "columns");
  if (!columns.ok()) return columns.status();
  rule.columns = *columns;
  auto update_of = GetColumnNames(j, "update_of");
  if (!update_of.ok()) return update_of.status();
  rule.update_of = *update_of;
  if (j.contains("update_of") && rule.update_of.empty()) {
    return Status::Invalid("field \"update_of\" must name at least one column (leave it out: every UPDATE)");
  }
  if (rule.table.empty() == rule.primer.empty()) {
    return Status::Invalid("a rule names exactly one of \"table\" or \"primer\"");
  }
  bool has_keys = !rule.keys_sql.empty() || rule.python_rule.has_value();
  if (!rule.primer.empty()) {
    if (has_keys) return Status::Invalid("a primer rule maps keys with \"params\", not \"keys\"");
    rule.kind = DependsRule::Kind::kPrimer;
  } else if (has_keys) {
    if (j.contains("params")) return Status::Invalid("a rule has either \"params\" or \"keys\", not both");
    rule.kind = DependsRule::Kind::kTableKeys;
  } else {
    rule.kind = DependsRule::Kind::kTableParams;
  }
  for (const char* field : {"columns", "update_of"}) {
    if (rule.kind == DependsRule::Kind::kPrimer && j.contains(field)) {
      return Status::Invalid("\"" + std::string(field) + "\" is for table rules");
    }
  }
  if (rule.kind == DependsRule::Kind::kTableKeys && !rule.update_of.empty() && rule.columns.empty()) {
    return Status::Invalid("\"update_of\" on a keys rule needs \"columns\", the columns its keys read: without them "
                           "an UPDATE that moves the row to other keys cannot be told apart");
  }
  for (const auto& [param, target] : rule.params) {
    if (!spec.FindParam(param)) return Status::Invalid("params: unknown parameter " + QuoteForError(param));
    if (target.empty()) return Status::Invalid("params." + param + ": empty name");
  }
  return rule;
}

StatusOr<AugmentSql> ParseAugment(const json& j) {
  KCK_RETURN_IF_ERROR(CheckFields(j, "augment", {"insert", "update", "delete"}));
  AugmentSql a;
  for (auto [field, target] : {std::pair{"insert", &a.insert_sql}, {"update", &a.update_sql},
                               {"delete", &a.delete_sql}}) {
    auto s = GetString(j, field, false);
    if (!s.ok()) return s.status();
    *target = *s;
  }
  return a;
}

// "parameters": [{"name", "type"}, ...], into spec.params.
Status ParseParameters(const json& j, PrimerSpec& spec) {
  auto it = j.find("parameters");
  if (it == j.end()) return Status::Ok();
  if (!it->is_array()) return Status::Invalid("field \"parameters\" must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& p = (*it)[i];
    std::string where = "parameters[" + std::to_string(i) + "]";
    KCK_RETURN_IF_ERROR(CheckFields(p, where, {"name", "type"}));
    auto pname = GetString(p, "name", true);
    if (!pname.ok()) return pname.status().WithContext(where);
    auto ptype = GetString(p, "type", true);
    if (!ptype.ok()) return ptype.status().WithContext(where);
    if (!ValidatePrimerName(*pname).ok()) {
      return Status::Invalid(where + ": parameter name " + QuoteForError(*pname) + " must match [a-z_][a-z0-9_]*");
    }
    if (spec.FindParam(*pname)) return Status::Invalid("duplicate parameter " + QuoteForError(*pname));
    auto type = ParseParamType(*ptype);
    if (!type.ok()) return type.status().WithContext("parameter " + QuoteForError(*pname));
    spec.params.push_back({*pname, *type});
  }
  return Status::Ok();
}

// "depends_on": [rule, ...], into spec.depends_on.
Status ParseDependsOn(const json& j, PrimerSpec& spec) {
  auto it = j.find("depends_on");
  if (it == j.end()) return Status::Ok();
  if (!it->is_array()) return Status::Invalid("field \"depends_on\" must be an array");
  for (size_t i = 0; i < it->size(); ++i) {
    auto rule = ParseRule((*it)[i], spec);
    if (!rule.ok()) return rule.status().WithContext("depends_on[" + std::to_string(i) + "]");
    if (rule->python_rule && spec.engine != "python") {
      return Status::Invalid("depends_on[" + std::to_string(i) + "]: \"python_rule\" is for python primers");
    }
    spec.depends_on.push_back(std::move(*rule));
  }
  return Status::Ok();
}

// "augment": true/false for a python primer, else SQL per table and op.
Status ParseAugmentField(const json& j, PrimerSpec& spec) {
  auto it = j.find("augment");
  if (it == j.end()) return Status::Ok();
  if (spec.engine == "python") {
    if (!it->is_boolean()) return Status::Invalid("augment: a python primer says true or false");
    spec.python_augment = it->get<bool>();
    return Status::Ok();
  }
  if (!it->is_object()) return Status::Invalid("field \"augment\" must be an object keyed by table");
  for (const auto& [table, ops] : it->items()) {
    bool depended = false;
    for (const auto& r : spec.depends_on) depended |= r.table == table;
    if (!depended) return Status::Invalid("augment: table " + QuoteForError(table) + " is not in depends_on");
    auto a = ParseAugment(ops);
    if (!a.ok()) return a.status().WithContext("augment." + table);
    spec.augment[table] = *a;
  }
  return Status::Ok();
}

// "augment_max_changes": a positive integer.
Status ParseAugmentMaxChanges(const json& j, PrimerSpec& spec) {
  auto it = j.find("augment_max_changes");
  if (it == j.end()) return Status::Ok();
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 1000000) {
    return Status::Invalid("field \"augment_max_changes\" must be an integer from 1 to 1000000");
  }
  spec.augment_max_changes = it->get<size_t>();
  return Status::Ok();
}

// refresh_every, soft_expire, hard_expire.
Status ParsePeriods(const json& j, PrimerSpec& spec) {
  for (auto [field, target] : {std::pair{"refresh_every", &spec.refresh_every},
                               {"soft_expire", &spec.soft_expire}, {"hard_expire", &spec.hard_expire},
                               {"warm_every", &spec.warm_every}}) {
    auto p = GetPeriod(j, field);
    if (!p.ok()) return p.status();
    *target = *p;
  }
  if (spec.soft_expire && spec.hard_expire && *spec.soft_expire > *spec.hard_expire) {
    return Status::Invalid("soft_expire is longer than hard_expire");
  }
  return Status::Ok();
}

// "engine" or its synonym "kind": sql (default), python, http or command.
Status ParseKind(const json& j, PrimerSpec& spec) {
  auto engine = GetString(j, "engine", false);
  if (!engine.ok()) return engine.status();
  auto kind = GetString(j, "kind", false);
  if (!kind.ok()) return kind.status();
  if (!engine->empty() && !kind->empty() && *engine != *kind) {
    return Status::Invalid("\"engine\" and \"kind\" name the same thing: give one");
  }
  if (!engine->empty() || !kind->empty()) spec.engine = engine->empty() ? *kind : *engine;
  if (spec.engine != "sql" && spec.engine != "python" && !IsImportKind(spec.engine)) {
    return Status::Invalid("kind " + QuoteForError(spec.engine) + " is not \"sql\", \"python\", \"http\" or \"command\"");
  }
  return Status::Ok();
}

// "warm": SQL, or for a python primer true (its class defines warm());
// "warm_every" needs it.
Status ParseWarm(const json& j, PrimerSpec& spec) {
  if (spec.engine == "python") {
    auto it = j.find("warm");
    if (it != j.end() && !it->is_boolean()) return Status::Invalid("warm: a python primer says true or false");
    spec.python_warm = it != j.end() && it->get<bool>();
  } else {
    auto warm = GetString(j, "warm", false);
    if (!warm.ok()) return warm.status();
    spec.warm = *warm;
  }
  if (spec.warm_every && !spec.Warms()) return Status::Invalid("warm_every needs \"warm\"");
  return Status::Ok();
}

StatusOr<PrimerSpec> ParsePrimerFields(const json& j) {
  PrimerSpec spec;
  auto name = GetString(j, "name", true);
  if (!name.ok()) return name.status();
  spec.name = *name;
  KCK_RETURN_IF_ERROR(ValidatePrimerName(spec.name));
  KCK_RETURN_IF_ERROR(CheckFields(j, "primer", {"name", "parameters", "engine", "kind", "compute", "depends_on",
                                                  "augment", "augment_max_changes", "warm", "warm_every",
                                                  "refresh_every", "soft_expire", "hard_expire", "source", "url",
                                                  "argv", "headers", "timeout", "retries", "max_bytes"}));
  KCK_RETURN_IF_ERROR(ParseKind(j, spec));
  auto source = GetString(j, "source", false);
  if (!source.ok()) return source.status();
  if (!source->empty()) spec.source = *source;
  KCK_RETURN_IF_ERROR(ParseParameters(j, spec));
  auto compute = GetString(j, "compute", spec.engine == "sql");
  if (!compute.ok()) return compute.status();
  spec.compute = *compute;
  if (spec.engine != "sql" && !spec.compute.empty()) {
    return Status::Invalid("a " + spec.engine + " primer has no \"compute\" SQL");
  }
  KCK_RETURN_IF_ERROR(ParseImportFields(j, spec.engine, spec.params, &spec.import));
  if (IsImportKind(spec.engine) && j.contains("augment")) {
    return Status::Invalid("a " + spec.engine + " primer has no \"augment\": it is fetched whole");
  }
  KCK_RETURN_IF_ERROR(ParseDependsOn(j, spec));
  KCK_RETURN_IF_ERROR(ParseAugmentField(j, spec));
  KCK_RETURN_IF_ERROR(ParseAugmentMaxChanges(j, spec));
  KCK_RETURN_IF_ERROR(ParsePeriods(j, spec));
  KCK_RETURN_IF_ERROR(ParseWarm(j, spec));
  return spec;
}

std::string PrimerLabel(const json& j, size_t index) {
  auto it = j.find("name");
  if (j.is_object() && it != j.end() && it->is_string()) return "primer " + QuoteForError(it->get<std::string>());
  return "primers[" + std::to_string(index) + "]";
}

}  // namespace

const std::string& AugmentSql::ForOp(char op) const {
  static const std::string none;
  switch (op) {
    case 'I': return insert_sql;
    case 'U': return update_sql;
    case 'D': return delete_sql;
    default: return none;
  }
}

const ParamSpec* PrimerSpec::FindParam(std::string_view param) const {
  for (const auto& p : params) {
    if (p.name == param) return &p;
  }
  return nullptr;
}

StatusOr<PrimerSpec> ParsePrimer(const json& j) {
  if (!j.is_object()) return Status::Invalid("a primer must be an object");
  auto spec = ParsePrimerFields(j);
  if (!spec.ok()) return spec.status().WithContext(PrimerLabel(j, 0));
  return spec;
}

Status CheckCaptureMode(const std::string& mode) {
  if (mode == "auto" || mode == "c" || mode == "plpgsql") return Status::Ok();
  return Status::Invalid("capture: expected \"auto\", \"c\" or \"plpgsql\", got " + QuoteForError(mode));
}

namespace {

// The config's "capture" and "capture_library".
Status ParseCapture(const json& doc, Config& config) {
  auto capture = GetString(doc, "capture", false);
  if (!capture.ok()) return capture.status();
  if (!capture->empty()) KCK_RETURN_IF_ERROR(CheckCaptureMode(*capture));
  auto library = GetString(doc, "capture_library", false);
  if (!library.ok()) return library.status();
  config.capture = *capture;
  config.capture_library = *library;
  return Status::Ok();
}

}  // namespace

StatusOr<Config> ParseConfig(std::string_view text, std::string_view origin) {
  std::string where(origin);
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    // Parse again with exceptions to learn where it broke. Not only
    // parse_error: a number too large for a double throws out_of_range.
    try {
      json again = json::parse(text);
    } catch (const json::exception& e) {
      return Status::Invalid(where + ": not valid JSON: " + e.what());
    }
    return Status::Invalid(where + ": not valid JSON");
  }
  Status fields = CheckFields(doc, "config", {"primers", "source", "capture", "capture_library"});
  if (!fields.ok()) return fields.WithContext(where);
  Config config;
  auto source = GetString(doc, "source", false);
  if (!source.ok()) return source.status().WithContext(where);
  if (!source->empty()) config.source = *source;
  Status capture = ParseCapture(doc, config);
  if (!capture.ok()) return capture.WithContext(where);
  auto it = doc.find("primers");
  if (it == doc.end() || !it->is_array()) {
    return Status::Invalid(where + ": expected {\"primers\": [...]}");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& pj = (*it)[i];
    if (!pj.is_object()) return Status::Invalid(where + ": primers[" + std::to_string(i) + "] must be an object");
    auto spec = ParsePrimerFields(pj);
    if (!spec.ok()) return spec.status().WithContext(where + ": " + PrimerLabel(pj, i));
    spec->source = config.source;
    config.primers.push_back(std::move(*spec));
  }
  Status graph = CheckPrimerGraph(config.primers);
  if (!graph.ok()) return graph.WithContext(where);
  return config;
}

Status CheckPrimerGraph(const std::vector<PrimerSpec>& primers) {
  std::map<std::string, const PrimerSpec*> by_name;
  for (const auto& p : primers) {
    if (!by_name.emplace(p.name, &p).second) return Status::Invalid("duplicate primer name " + QuoteForError(p.name));
  }
  for (const auto& p : primers) {
    for (size_t i = 0; i < p.depends_on.size(); ++i) {
      const DependsRule& r = p.depends_on[i];
      if (r.kind != DependsRule::Kind::kPrimer) continue;
      std::string where = "primer " + QuoteForError(p.name) + ": depends_on[" + std::to_string(i) + "]";
      auto dep = by_name.find(r.primer);
      if (dep == by_name.end()) return Status::Invalid(where + ": unknown primer " + QuoteForError(r.primer));
      for (const auto& [param, other] : r.params) {
        const ParamSpec* theirs = dep->second->FindParam(other);
        if (!theirs) {
          return Status::Invalid(where + ": primer " + QuoteForError(r.primer) + " has no parameter " + QuoteForError(other));
        }
        if (theirs->type != p.FindParam(param)->type) {
          return Status::Invalid(where + ": parameter " + QuoteForError(param) + " is " +
                                 std::string(ParamTypeName(p.FindParam(param)->type)) + " but " +
                                 r.primer + "." + other + " is " + std::string(ParamTypeName(theirs->type)));
        }
      }
    }
  }
  // Products that depend on products must not form a cycle.
  std::map<std::string, int> state;  // 1 visiting, 2 done
  std::function<Status(const PrimerSpec&)> visit = [&](const PrimerSpec& p) -> Status {
    state[p.name] = 1;
    for (const auto& r : p.depends_on) {
      if (r.kind != DependsRule::Kind::kPrimer) continue;
      int s = state[r.primer];
      if (s == 1) return Status::Invalid("primer " + QuoteForError(p.name) + ": depends on " + QuoteForError(r.primer) + " in a cycle");
      if (s == 0) KCK_RETURN_IF_ERROR(visit(*by_name[r.primer]));
    }
    state[p.name] = 2;
    return Status::Ok();
  };
  for (const auto& p : primers) {
    if (state[p.name] == 0) KCK_RETURN_IF_ERROR(visit(p));
  }
  return Status::Ok();
}

json PrimerToJson(const PrimerSpec& spec) {
  json j;
  j["name"] = spec.name;
  j["engine"] = spec.engine;
  j["source"] = spec.source;
  j["parameters"] = json::array();
  for (const auto& p : spec.params) {
    j["parameters"].push_back({{"name", p.name}, {"type", std::string(ParamTypeName(p.type))}});
  }
  if (!spec.compute.empty()) j["compute"] = spec.compute;
  j["depends_on"] = json::array();
  for (const auto& r : spec.depends_on) {
    json rj;
    if (r.kind == DependsRule::Kind::kPrimer) {
      rj["primer"] = r.primer;
    } else {
      rj["table"] = r.table;
    }
    if (r.kind == DependsRule::Kind::kTableKeys) {
      if (!r.keys_sql.empty()) rj["keys"] = r.keys_sql;
      if (r.python_rule) rj["python_rule"] = *r.python_rule;
      if (!r.columns.empty()) rj["columns"] = r.columns;
    } else {
      rj["params"] = json::object();
      for (const auto& [k, v] : r.params) rj["params"][k] = v;
      // A params rule may list columns for augment code too.
      if (r.kind == DependsRule::Kind::kTableParams && !r.columns.empty()) rj["columns"] = r.columns;
    }
    if (!r.update_of.empty()) rj["update_of"] = r.update_of;
    j["depends_on"].push_back(rj);
  }
  if (spec.engine == "python") {
    j["augment"] = spec.python_augment;
  } else if (!spec.augment.empty()) {
    j["augment"] = json::object();
    for (const auto& [table, a] : spec.augment) {
      json aj = json::object();
      if (!a.insert_sql.empty()) aj["insert"] = a.insert_sql;
      if (!a.update_sql.empty()) aj["update"] = a.update_sql;
      if (!a.delete_sql.empty()) aj["delete"] = a.delete_sql;
      j["augment"][table] = aj;
    }
  }
  if (spec.augment_max_changes != PrimerSpec{}.augment_max_changes) {
    j["augment_max_changes"] = spec.augment_max_changes;
  }
  ImportToJson(spec.import, spec.engine, j);
  if (!spec.warm.empty()) j["warm"] = spec.warm;
  if (spec.python_warm) j["warm"] = true;
  if (spec.warm_every) j["warm_every"] = FormatPeriod(*spec.warm_every);
  if (spec.refresh_every) j["refresh_every"] = FormatPeriod(*spec.refresh_every);
  if (spec.soft_expire) j["soft_expire"] = FormatPeriod(*spec.soft_expire);
  if (spec.hard_expire) j["hard_expire"] = FormatPeriod(*spec.hard_expire);
  return j;
}

}  // namespace kck
