#include "primers/warm.h"

#include <functional>
#include <set>

#include "primers/key_codec.h"

namespace kck {
namespace {

// 0 for a primer that depends on no primer, else one more than its deepest.
int Level(const Registry& registry, const Primer& primer, std::map<std::string, int>& memo) {
  auto it = memo.find(primer.spec.name);
  if (it != memo.end()) return it->second;
  int level = 0;
  for (const auto& rule : primer.spec.depends_on) {
    if (rule.kind != DependsRule::Kind::kPrimer) continue;
    if (const Primer* dep = registry.Find(rule.primer)) level = std::max(level, 1 + Level(registry, *dep, memo));
  }
  return memo[primer.spec.name] = level;
}

// The key of `rule.primer` that `values` (of `primer`'s key) name through the
// rule's params, or "" when the rule leaves a parameter of it open.
std::string DependencyKey(const Primer& dep, const DependsRule& rule, const PrimerSpec& spec,
                          const std::vector<std::string>& values) {
  std::vector<std::string> dep_values;
  for (const auto& q : dep.spec.params) {
    auto mapped = std::find_if(rule.params.begin(), rule.params.end(), [&](const auto& kv) { return kv.second == q.name; });
    if (mapped == rule.params.end()) return "";
    for (size_t i = 0; i < spec.params.size(); ++i) {
      if (spec.params[i].name == mapped->first) dep_values.push_back(values[i]);
    }
  }
  auto key = EncodeKey(dep.spec.name, dep.spec.params, dep_values);
  return key.ok() ? *key : "";
}

}  // namespace

BoundSql WarmStatement(const PrimerSpec& spec) {
  std::string columns;
  for (const auto& p : spec.params) {
    if (!columns.empty()) columns += ", ";
    // Parameter names match [a-z_][a-z0-9_]*: quoting them is enough.
    columns += "(kck_w.\"" + p.name + "\")::" + std::string(SqlTypeOf(p.type)) + "::text";
  }
  const std::string head = spec.params.empty() ? "SELECT" : "SELECT DISTINCT " + columns;
  return Embedded(head + " FROM (", Verbatim(spec.warm), spec.params.empty() ? "\n) AS kck_w LIMIT 1" : "\n) AS kck_w");
}

StatusOr<std::vector<std::string>> WarmKeys(const PrimerSpec& spec, const pg::Result& result) {
  std::vector<std::string> keys;
  for (int row = 0; row < result.rows(); ++row) {
    std::vector<std::string> values;
    for (int col = 0; col < result.cols() && !result.is_null(row, col); ++col) {
      values.emplace_back(result.get(row, col));
    }
    if (values.size() != spec.params.size()) continue;  // a NULL: no product
    auto key = EncodeKey(spec.name, spec.params, values);
    if (!key.ok()) return key.status().WithContext("warm");
    keys.push_back(std::move(*key));
  }
  return keys;
}

std::vector<std::vector<std::string>> PlanWarm(const Registry& registry,
                                               const std::map<std::string, std::vector<std::string>>& wanted) {
  std::vector<std::vector<std::string>> levels;
  std::set<std::string> planned;
  std::map<std::string, int> memo;
  std::function<void(const Primer&, const std::string&)> add = [&](const Primer& primer, const std::string& key) {
    if (!planned.insert(key).second) return;
    auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
    if (!values.ok()) return;
    for (const auto& rule : primer.spec.depends_on) {
      const Primer* dep = rule.kind == DependsRule::Kind::kPrimer ? registry.Find(rule.primer) : nullptr;
      if (dep == nullptr) continue;
      const std::string dep_key = DependencyKey(*dep, rule, primer.spec, *values);
      if (!dep_key.empty()) add(*dep, dep_key);
    }
    const size_t level = static_cast<size_t>(Level(registry, primer, memo));
    if (levels.size() <= level) levels.resize(level + 1);
    levels[level].push_back(key);
  };
  for (const auto& [name, keys] : wanted) {
    const Primer* primer = registry.Find(name);
    if (primer == nullptr) continue;
    for (const auto& key : keys) add(*primer, key);
  }
  std::erase_if(levels, [](const auto& l) { return l.empty(); });
  return levels;
}

}  // namespace kck
