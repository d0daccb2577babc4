// The primer registry: the primers of kck.primers, compiled for use (SQL
// with bound parameters, rules indexed by table and by primer).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "pg/connection.h"
#include "primers/config.h"
#include "primers/sql_params.h"

namespace kck {

// The SQL type a parameter of `type` is bound as.
std::string_view SqlTypeOf(ParamType type);

// Reads the registry: rows of (name, spec JSON text).
inline constexpr std::string_view kRegistrySql = "SELECT name, spec::text FROM kck.primers ORDER BY name";

// The primer specs in rows of kRegistrySql (not yet checked as a graph).
StatusOr<std::vector<PrimerSpec>> ParseRegistryRows(const pg::Result& rows);

// A primer's compute SQL (bound) wrapped to return (value jsonb, snapshot
// text) in one statement, so the snapshot is exactly the one the compute
// read. It returns as many rows as the compute: none when the product does
// not exist.
BoundSql ComputeStatement(BoundSql compute);

// A sql primer's compute, bound, as a statement that returns all of its
// columns and no row: kck install checks that it has one (its value).
StatusOr<std::string> ComputeColumnsStatement(const PrimerSpec& spec);

// The compute of a sql primer for a client that binds parameters itself,
// as Python's DB-API does in "pyformat" style (Django's connection.cursor):
// each `:name` becomes `%(name)s::type`, every other `%` is doubled, and the
// statement returns the value as JSON text (a row per row of the compute,
// none when the product does not exist). kck install stores it in
// kck.primers.client_compute, so that Django computes a miss in process
// with the placeholders found by the same scanner as the daemon's.
StatusOr<std::string> ClientComputeStatement(const PrimerSpec& spec);

// Named values for bound SQL: a name -> value (nullopt is NULL).
using NamedValues = std::map<std::string, std::optional<std::string>>;

// The values of `sql`'s parameters in its $n order, taken from `named`
// (a name it does not hold is NULL).
std::vector<std::optional<std::string>> BindValues(const BoundSql& sql, const NamedValues& named);

// A primer ready to run.
// The end of a fast write's statement (listener/fast_write.cc), after the
// CTEs `stored` (the stored row's `value`) and `next` (the new `value`, and
// `snapshot` when `with_snapshot`: a recompute's; an augment keeps the
// stored one).
struct FastWriteParts {
  std::string key;      // the key, a placeholder ("$4::text")
  std::string stored;   // CTE names
  std::string next;
  bool with_snapshot;
  std::string soft, hard;  // expiry in seconds, placeholders
  std::string check;       // the last column: fails the statement when the write must not happen
};

// The CTE kck_u, which updates `key`'s row from `next` as sql/daemon_write.sql
// writes a product, and the row the daemon reads: (stored, written,
// unchanged, ms, check).
std::string FastWriteEnd(const FastWriteParts& parts);

struct Primer {
  PrimerSpec spec;
  BoundSql compute;  // sql engine: ComputeStatement(), parameters are the primer's
  // sql engine with parameters: the compute of many keys in one statement.
  // $1 is the keys, then one array per parameter in declared order; it
  // returns (key, value, snapshot, found) per key and row of its compute
  // (found is false on the one row of a key whose compute has no row).
  std::string compute_many;
  // sql engine: the compute and the write of one stored key in one
  // statement, inside the batch's write transaction (sql/012_fast_write.sql):
  // $1.. the compute's parameters, then the key, and the soft and hard
  // expiry in seconds. It returns (stored, written, unchanged, ms)
  // (FastWriteEnd).
  std::string compute_write;
  // Augment SQL by table then op ('I', 'U', 'D'): parameters :value, :old,
  // :new and the primer's own.
  std::map<std::string, std::map<char, BoundSql>> augment;
  // Keys SQL by rule index: parameters :old and :new.
  std::map<size_t, BoundSql> keys;
  // The same for many row pairs in one statement, by rule index: $1 the
  // pairs' ordinals, $2 their old rows, $3 their new rows (jsonb[]); it
  // returns (ordinal, key) per key.
  std::map<size_t, std::string> keys_many;

  bool python() const { return spec.engine == "python"; }
  // Whether a row change of `table` with `op` can be applied by augment.
  bool Augments(const std::string& table, char op) const;
  // The key's parameter values (from DecodeKey) by parameter name.
  NamedValues KeyValues(const std::vector<std::string>& values) const;
};

// Compiles one primer's spec. Errors name the field ("compute: unknown
// parameter :x"), not the primer: the caller adds it once.
StatusOr<std::unique_ptr<Primer>> CompilePrimer(PrimerSpec spec);

// A dependency rule seen from the table or primer it watches.
struct RuleRef {
  const Primer* primer;
  size_t rule;  // index into primer->spec.depends_on
  const DependsRule& get() const { return primer->spec.depends_on[rule]; }
};

class Registry {
 public:
  // Compiles specs (already shape-checked or read from kck.primers). Fails
  // on the first primer whose SQL placeholders do not match its parameters.
  static StatusOr<std::shared_ptr<const Registry>> Build(std::vector<PrimerSpec> specs);
  // Compiles the rows of kRegistrySql.
  static StatusOr<std::shared_ptr<const Registry>> FromRows(const pg::Result& rows);

  const Primer* Find(std::string_view name) const;
  const std::vector<std::unique_ptr<Primer>>& primers() const { return primers_; }
  // Rules watching a table ("schema.name") or a primer's products.
  const std::vector<RuleRef>& RulesForTable(std::string_view table) const;
  const std::vector<RuleRef>& RulesForPrimer(std::string_view primer) const;
  bool AnyPrimerRules() const { return !by_primer_.empty(); }

 private:
  std::vector<std::unique_ptr<Primer>> primers_;
  std::map<std::string, const Primer*, std::less<>> by_name_;
  std::map<std::string, std::vector<RuleRef>, std::less<>> by_table_;
  std::map<std::string, std::vector<RuleRef>, std::less<>> by_primer_;
};

}  // namespace kck
