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

// The SQL of `c`'s augment, given `previous` (SQL of the value before it)
// as :value; its :old, :new and key parameters become placeholders.
StatusOr<BoundSql> AugmentStep(const Primer& primer, const NamedValues& key_values, const ChangeImage& c,
                               const std::string& previous, Placeholders& ph) {
  auto table = primer.spec.augment.find(c.table);
  if (table == primer.spec.augment.end() || table->second.ForOp(c.op).empty()) {
    return Status::Invalid("primer \"" + primer.spec.name + "\" has no augment for " + c.table);
  }
  std::string old_ph, new_ph;
  BoundSql step = Verbatim(table->second.ForOp(c.op));
  auto rewritten = RewriteNamedParams(step.origin.text, [&](const std::string& name) -> StatusOr<std::string> {
    if (name == "value") return previous;
    if (name == "old") return old_ph.empty() ? old_ph = ph.Add(c.old_row, "jsonb") : old_ph;
    if (name == "new") return new_ph.empty() ? new_ph = ph.Add(c.new_row, "jsonb") : new_ph;
    const ParamSpec* param = primer.spec.FindParam(name);
    if (param == nullptr) return Status::Invalid("unknown parameter \":" + name + "\"");
    return ph.KeyParam(name, key_values, SqlTypeOf(param->type));
  }, &step.origin.edits);
  if (!rewritten.ok()) return rewritten.status().WithContext("primer \"" + primer.spec.name + "\": augment." + c.table);
  step.sql = std::move(*rewritten);
  step.origin.end = step.sql.size();
  return Embedded("to_jsonb((", std::move(step), "\n))");
}

}  // namespace

StatusOr<AugmentStatement> ChainAugments(const Primer& primer, const NamedValues& key_values,
                                         const std::vector<ChangeImage>& changes, const std::string& current) {
  AugmentStatement out;
  Placeholders ph(&out);
  std::string sql = "WITH kck_s0 AS MATERIALIZED (SELECT " + ph.Add(current, "jsonb") + " AS v)";
  for (size_t i = 0; i < changes.size(); ++i) {
    const std::string previous = "(SELECT v FROM kck_s" + std::to_string(i) + ")";
    auto step = AugmentStep(primer, key_values, changes[i], previous, ph);
    if (!step.ok()) return step.status();
    sql += ", kck_s" + std::to_string(i + 1) + " AS MATERIALIZED (SELECT ";
    out.origins.push_back(step->origin.Shifted(sql.size()));
    sql += step->sql + " AS v)";
  }
  out.sql = sql + "\nSELECT (SELECT v FROM kck_s" + std::to_string(changes.size()) + ")::text";
  return out;
}

StatusOr<AugmentStatement> AugmentWrite(const Primer& primer, const NamedValues& key_values, const ChangeImage& change,
                                        const std::string& txid, const std::string& key,
                                        const std::optional<std::string>& soft, const std::optional<std::string>& hard) {
  AugmentStatement out;
  Placeholders ph(&out);
  const std::string k = ph.Add(key, "text");
  // The stored row, under the key's lock; kck_d holds its value only when
  // the snapshot of its last compute does not show the change.
  std::string sql = "WITH kck_c AS MATERIALIZED (SELECT c.value, c.snapshot FROM kck.cache c WHERE c.key = " + k + "), ";
  sql += "kck_d AS MATERIALIZED (SELECT c.value AS v FROM kck_c c WHERE c.snapshot IS NULL OR NOT "
         "pg_catalog.pg_visible_in_snapshot(" + ph.Add(txid, "xid8") + ", c.snapshot)), ";
  auto step = AugmentStep(primer, key_values, change, "(SELECT v FROM kck_d)", ph);
  if (!step.ok()) return step.status();
  sql += "kck_n AS MATERIALIZED (SELECT " + step->sql + " AS value FROM kck_d), ";
  // A stored value with no value, or an augment that gives none, fails the
  // statement: the normal path recomputes the key and counts the fallback.
  const std::string check = "(SELECT kck.expect_one_row((SELECT count(*) FROM kck_n n, kck_d d WHERE n.value IS NOT "
                            "NULL AND d.v IS NOT NULL), " + k + ") FROM kck_d)";
  sql += FastWriteEnd({k, "kck_c", "kck_n", false, ph.Add(soft, "float8"), ph.Add(hard, "float8"), check});
  out.sql = std::move(sql);
  return out;
}

}  // namespace kck
