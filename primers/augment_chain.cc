#include "primers/augment_chain.h"

#include "primers/sql_params.h"

namespace kck {
namespace {

// Numbers the parameters of one statement: each distinct key parameter
// once, each change's :old and :new on their own.
class Placeholders {
 public:
  explicit Placeholders(AugmentStatement* out) : out_(out) {}
  std::string Add(std::optional<std::string> value, std::string_view type) {
    out_->params.push_back(std::move(value));
    return "$" + std::to_string(out_->params.size()) + "::" + std::string(type);
  }
  std::string KeyParam(const std::string& name, const NamedValues& values, std::string_view type) {
    auto it = key_.find(name);
    if (it != key_.end()) return it->second;
    auto v = values.find(name);
    return key_[name] = Add(v == values.end() ? std::nullopt : v->second, type);
  }

 private:
  AugmentStatement* out_;
  std::map<std::string, std::string> key_;
};

}  // namespace

StatusOr<AugmentStatement> ChainAugments(const Primer& primer, const NamedValues& key_values,
                                         const std::vector<ChangeImage>& changes, const std::string& current) {
  AugmentStatement out;
  Placeholders ph(&out);
  std::string sql = "WITH kck_s0 AS MATERIALIZED (SELECT " + ph.Add(current, "jsonb") + " AS v)";
  for (size_t i = 0; i < changes.size(); ++i) {
    const ChangeImage& c = changes[i];
    auto table = primer.spec.augment.find(c.table);
    if (table == primer.spec.augment.end() || table->second.ForOp(c.op).empty()) {
      return Status::Invalid("primer \"" + primer.spec.name + "\" has no augment for " + c.table);
    }
    const std::string previous = "(SELECT v FROM kck_s" + std::to_string(i) + ")";
    std::string old_ph, new_ph;
    auto step = RewriteNamedParams(table->second.ForOp(c.op), [&](const std::string& name) -> StatusOr<std::string> {
      if (name == "value") return previous;
      if (name == "old") return old_ph.empty() ? old_ph = ph.Add(c.old_row, "jsonb") : old_ph;
      if (name == "new") return new_ph.empty() ? new_ph = ph.Add(c.new_row, "jsonb") : new_ph;
      const ParamSpec* param = primer.spec.FindParam(name);
      if (param == nullptr) return Status::Invalid("unknown parameter \":" + name + "\"");
      return ph.KeyParam(name, key_values, SqlTypeOf(param->type));
    });
    if (!step.ok()) return step.status().WithContext("primer \"" + primer.spec.name + "\": augment." + c.table);
    sql += ", kck_s" + std::to_string(i + 1) + " AS MATERIALIZED (SELECT to_jsonb((" + *step + "\n)) AS v)";
  }
  out.sql = sql + "\nSELECT (SELECT v FROM kck_s" + std::to_string(changes.size()) + ")::text";
  return out;
}

}  // namespace kck
