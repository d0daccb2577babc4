#include "primers/registry.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "common/quote.h"

namespace kck {

std::string_view SqlTypeOf(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "bigint";
    case ParamType::kStr: return "text";
    case ParamType::kBool: return "boolean";
    case ParamType::kDate: return "date";
  }
  return "text";
}

namespace {

// A trailing semicolon would end a scalar subquery early.
std::string_view StripStatementEnd(std::string_view sql) {
  while (!sql.empty() && (sql.back() == ';' || std::isspace(static_cast<unsigned char>(sql.back())))) {
    sql.remove_suffix(1);
  }
  return sql;
}

}  // namespace

// The compute is a FROM subquery, not a scalar one: no row stays no row
// (the product does not exist) instead of becoming a null value.
BoundSql ComputeStatement(BoundSql compute) {
  compute.sql.resize(StripStatementEnd(compute.sql).size());
  compute.origin.end = std::min(compute.origin.end, compute.sql.size());
  return Embedded("SELECT to_jsonb(kck_r.kck_value) AS value, pg_current_snapshot()::text AS snapshot FROM (",
                  std::move(compute), "\n) AS kck_r (kck_value)");
}

std::vector<std::optional<std::string>> BindValues(const BoundSql& sql, const NamedValues& named) {
  std::vector<std::optional<std::string>> out;
  out.reserve(sql.order.size());
  for (const auto& name : sql.order) {
    auto it = named.find(name);
    out.push_back(it == named.end() ? std::nullopt : it->second);
  }
  return out;
}

bool Primer::Augments(const std::string& table, char op) const {
  if (python()) return spec.python_augment;  // the worker declines what it cannot apply
  auto a = augment.find(table);
  return a != augment.end() && a->second.count(op);
}

NamedValues Primer::KeyValues(const std::vector<std::string>& values) const {
  NamedValues named;
  for (size_t i = 0; i < spec.params.size() && i < values.size(); ++i) named[spec.params[i].name] = values[i];
  return named;
}

namespace {

std::vector<NamedParam> PrimerParams(const PrimerSpec& spec) {
  std::vector<NamedParam> out;
  for (const auto& p : spec.params) out.push_back({p.name, std::string(SqlTypeOf(p.type))});
  return out;
}

// A keys rule run for many row pairs at once: its :old and :new become the
// columns of the pairs unnested beside their ordinals.
StatusOr<std::string> KeysManyStatement(const std::string& keys_sql) {
  auto inner = RewriteNamedParams(StripStatementEnd(keys_sql), [](const std::string& name) -> StatusOr<std::string> {
    if (name != "old" && name != "new") return Status::Invalid("unknown parameter :" + name);
    return "kck_c.\"" + name + "\"";
  });
  if (!inner.ok()) return inner.status();
  return "SELECT kck_c.kck_i, kck_r.kck_key FROM unnest($1::int[], $2::jsonb[], $3::jsonb[]) AS kck_c (kck_i, \"old\", "
         "\"new\") CROSS JOIN LATERAL (" + *inner + "\n) AS kck_r (kck_key) WHERE kck_r.kck_key IS NOT NULL";
}

std::string PercentsDoubled(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  for (char c : sql) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// Primer::compute_write, around the bound ComputeStatement().
std::string ComputeWriteStatement(const BoundSql& compute) {
  const size_t n = compute.order.size();
  const std::string key = "$" + std::to_string(n + 1) + "::text";
  // The compute runs only for a stored key (an unstored one is primed on
  // read).
  std::string sql = "WITH kck_s AS MATERIALIZED (SELECT c.value FROM kck.cache c WHERE c.key = " + key + "), ";
  sql += "kck_v AS MATERIALIZED (SELECT v.value, v.snapshot FROM (" + compute.sql;
  sql += "\n) AS v WHERE EXISTS (SELECT FROM kck_s)), ";
  // A stored key's compute must return one row, or the statement fails and
  // the normal path takes over.
  return sql + FastWriteEnd({key, "kck_s", "kck_v", true, "$" + std::to_string(n + 2) + "::float8",
                             "$" + std::to_string(n + 3) + "::float8",
                             "(SELECT kck.expect_one_row((SELECT count(*) FROM kck_v), " + key + ") FROM kck_s)"});
}

}  // namespace

std::string FastWriteEnd(const FastWriteParts& w) {
  // As sql/daemon_write.sql writes a product: a new version only for a new
  // value; a recompute's snapshot replaces the stored one, an augment keeps it.
  std::string sql = "kck_u AS (UPDATE kck.cache c SET value = n.value, ";
  sql += "version = c.version + CASE WHEN c.value IS DISTINCT FROM n.value THEN 1 ELSE 0 END, computed_at = now(), ";
  sql += "soft_expire = now() + make_interval(secs => " + w.soft + "), ";
  sql += "hard_expire = now() + make_interval(secs => " + w.hard + "), ";
  sql += "compute_ms = 1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()), error = NULL";
  sql += w.with_snapshot ? ", snapshot = n.snapshot::pg_snapshot" : "";
  sql += " FROM " + w.next + " n WHERE c.key = " + w.key + " RETURNING 1) ";
  // The check is in the target list, which is always evaluated (a join with
  // an empty side would skip it).
  sql += "SELECT (SELECT count(*) FROM " + w.stored + "), (SELECT count(*) FROM kck_u), ";
  sql += "coalesce((SELECT s.value IS NOT DISTINCT FROM n.value FROM " + w.stored + " s, " + w.next + " n), false), ";
  sql += "1000 * extract(epoch FROM clock_timestamp() - statement_timestamp()), " + w.check;
  return sql;
}

StatusOr<std::unique_ptr<Primer>> CompilePrimer(PrimerSpec spec) {
  auto primer = std::make_unique<Primer>();
  if (spec.engine == "sql") {
    auto compute = BindNamedParams(spec.compute, PrimerParams(spec));
    if (!compute.ok()) return compute.status().WithContext("compute");
    primer->compute = ComputeStatement(std::move(*compute));
    primer->compute_write = ComputeWriteStatement(primer->compute);
    if (!spec.params.empty()) {
      // Parameter names match [a-z_][a-z0-9_]*: quoting them is enough.
      auto inner = RewriteNamedParams(StripStatementEnd(spec.compute),
                                      [](const std::string& name) -> StatusOr<std::string> {
                                        return "kck_k.\"" + name + "\"";
                                      });
      if (!inner.ok()) return inner.status().WithContext("compute");
      std::string columns = "kck_key", arrays = "$1::text[]";
      for (size_t i = 0; i < spec.params.size(); ++i) {
        columns += ", \"" + spec.params[i].name + "\"";
        arrays += ", $" + std::to_string(i + 2) + "::" + std::string(SqlTypeOf(spec.params[i].type)) + "[]";
      }
      // A key whose compute has no row gets a row with found = false.
      primer->compute_many = "SELECT kck_k.kck_key, to_jsonb(kck_r.kck_value), pg_current_snapshot()::text, "
                             "kck_r.kck_found IS NOT NULL FROM unnest(" + arrays + ") AS kck_k (" + columns +
                             ") LEFT JOIN LATERAL (SELECT kck_i.kck_value, true AS kck_found FROM (" + *inner +
                             "\n) AS kck_i (kck_value)) AS kck_r ON true";
    }
  }
  for (const auto& [table, ops] : spec.augment) {
    std::vector<NamedParam> names = {{"value", "jsonb"}, {"old", "jsonb"}, {"new", "jsonb"}};
    for (const auto& p : PrimerParams(spec)) names.push_back(p);
    for (char op : {'I', 'U', 'D'}) {
      const std::string& sql = ops.ForOp(op);
      if (sql.empty()) continue;
      auto bound = BindNamedParams(sql, names);
      if (!bound.ok()) return bound.status().WithContext("augment." + table);
      primer->augment[table][op] = std::move(*bound);
    }
  }
  for (size_t i = 0; i < spec.depends_on.size(); ++i) {
    const auto& rule = spec.depends_on[i];
    if (rule.kind != DependsRule::Kind::kTableKeys || rule.keys_sql.empty()) continue;
    auto bound = BindNamedParams(rule.keys_sql, {{"old", "jsonb"}, {"new", "jsonb"}});
    if (!bound.ok()) return bound.status().WithContext("depends_on[" + std::to_string(i) + "].keys");
    primer->keys[i] = std::move(*bound);
    auto many = KeysManyStatement(rule.keys_sql);
    if (!many.ok()) return many.status().WithContext("depends_on[" + std::to_string(i) + "].keys");
    primer->keys_many[i] = std::move(*many);
  }
  primer->spec = std::move(spec);
  return primer;
}

StatusOr<std::string> ClientComputeStatement(const PrimerSpec& spec) {
  const auto params = PrimerParams(spec);
  // A placeholder's name has no '%': doubling first leaves the placeholders
  // for the scanner as they are.
  const std::string doubled = PercentsDoubled(spec.compute);
  auto inner = RewriteNamedParams(StripStatementEnd(doubled),
                                  [&params](const std::string& name) -> StatusOr<std::string> {
                                    for (const auto& p : params) {
                                      if (p.name == name) return "(%(" + name + ")s::" + p.sql_type + ")";
                                    }
                                    return Status::Invalid("unknown parameter :" + name);
                                  });
  if (!inner.ok()) return inner.status().WithContext("primer \"" + spec.name + "\": compute");
  return "SELECT to_jsonb(kck_r.kck_value)::text AS value FROM (" + *inner + "\n) AS kck_r (kck_value)";
}

StatusOr<std::string> ComputeColumnsStatement(const PrimerSpec& spec) {
  auto bound = BindNamedParams(spec.compute, PrimerParams(spec));
  if (!bound.ok()) return bound.status();
  return "SELECT * FROM (" + std::string(StripStatementEnd(bound->sql)) + "\n) AS kck_c LIMIT 0";
}

StatusOr<std::shared_ptr<const Registry>> Registry::Build(std::vector<PrimerSpec> specs) {
  auto reg = std::make_shared<Registry>();
  for (auto& spec : specs) {
    const std::string name = spec.name;
    auto primer = CompilePrimer(std::move(spec));
    if (!primer.ok()) return primer.status().WithContext("primer " + QuoteForError(name));
    reg->by_name_[(*primer)->spec.name] = primer->get();
    reg->primers_.push_back(std::move(*primer));
  }
  for (const auto& p : reg->primers_) {
    for (size_t i = 0; i < p->spec.depends_on.size(); ++i) {
      const auto& rule = p->spec.depends_on[i];
      if (rule.kind == DependsRule::Kind::kPrimer) {
        reg->by_primer_[rule.primer].push_back({p.get(), i});
      } else {
        reg->by_table_[rule.table].push_back({p.get(), i});
      }
    }
  }
  return std::shared_ptr<const Registry>(std::move(reg));
}

StatusOr<std::vector<PrimerSpec>> ParseRegistryRows(const pg::Result& rows) {
  std::vector<PrimerSpec> specs;
  for (int i = 0; i < rows.rows(); ++i) {
    auto j = nlohmann::json::parse(rows.get(i, 1), nullptr, false);
    if (j.is_discarded()) {
      return Status::Invalid("kck.primers: primer \"" + std::string(rows.get(i, 0)) + "\": spec is not valid JSON");
    }
    auto spec = ParsePrimer(j);
    if (!spec.ok()) return spec.status().WithContext("kck.primers");
    specs.push_back(std::move(*spec));
  }
  return specs;
}

StatusOr<std::shared_ptr<const Registry>> Registry::FromRows(const pg::Result& rows) {
  auto specs = ParseRegistryRows(rows);
  if (!specs.ok()) return specs.status();
  KCK_RETURN_IF_ERROR(CheckPrimerGraph(*specs).WithContext("kck.primers"));
  return Build(std::move(*specs));
}

const Primer* Registry::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const std::vector<RuleRef>& Registry::RulesForTable(std::string_view table) const {
  static const std::vector<RuleRef> none;
  auto it = by_table_.find(table);
  return it == by_table_.end() ? none : it->second;
}

const std::vector<RuleRef>& Registry::RulesForPrimer(std::string_view primer) const {
  static const std::vector<RuleRef> none;
  auto it = by_primer_.find(primer);
  return it == by_primer_.end() ? none : it->second;
}

}  // namespace kck
