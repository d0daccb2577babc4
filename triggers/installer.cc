#include "triggers/installer.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "common/quote.h"
#include "primers/registry.h"
#include "primers/warm.h"
#include "sql/embedded.h"
#include "triggers/capture.h"

namespace kck {
namespace {

constexpr const char* kInstallLock = "SELECT pg_advisory_xact_lock(7037803, -1)";

Quoter LibpqQuoter(const pg::Connection& conn) {
  return Quoter{[&conn](std::string_view s) { return conn.QuoteIdent(s); },
                [&conn](std::string_view s) { return conn.QuoteLiteral(s); }};
}

struct Column {
  std::string type;  // regtype text, e.g. "bigint"
};

struct TableInfo {
  std::string schema, name;
  std::map<std::string, Column> columns;
  std::vector<std::string> key_columns;
  std::string qualified() const { return schema + "." + name; }
};

// Looks a table up in the catalog. `name` may be schema-qualified; an
// unqualified name follows the connection's search_path.
StatusOr<TableInfo> ReadTable(pg::Connection& conn, const std::string& name) {
  auto res = conn.Exec(
      "SELECT n.nspname, c.relname, c.oid::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')",
      {name});
  if (!res.ok()) return Status::Invalid("table " + QuoteForError(name) + ": " + res.status().message());
  if (res->rows() == 0) return Status::Invalid("unknown table " + QuoteForError(name));
  TableInfo t;
  t.schema = res->get(0, 0);
  t.name = res->get(0, 1);
  std::string oid(res->get(0, 2));
  auto cols = conn.Exec(
      "SELECT attname, atttypid::regtype::text FROM pg_attribute "
      "WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped",
      {oid});
  if (!cols.ok()) return cols.status();
  for (int i = 0; i < cols->rows(); ++i) t.columns[std::string(cols->get(i, 0))] = {std::string(cols->get(i, 1))};
  auto pk = conn.Exec(
      "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
      "WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
      {oid});
  if (!pk.ok()) return pk.status();
  for (int i = 0; i < pk->rows(); ++i) t.key_columns.emplace_back(pk->get(i, 0));
  return t;
}

// Whether a column of SQL type `type` can feed a parameter of `param`.
bool Compatible(ParamType param, const std::string& type) {
  switch (param) {
    case ParamType::kInt: return type == "bigint" || type == "integer" || type == "smallint";
    case ParamType::kBool: return type == "boolean";
    case ParamType::kDate: return type == "date";
    case ParamType::kStr: return true;  // any value has a text form
  }
  return false;
}

Status PrepareCheck(pg::Connection& conn, const BoundSql& sql, const std::string& field) {
  Status s = InUserSql(conn.Prepare(sql.sql), sql);
  if (!s.ok()) return Status::Invalid(field + ": SQL does not prepare: " + s.message());
  return Status::Ok();
}

// A compute returns one column, its value: a second one would be dropped.
Status OneColumn(pg::Connection& conn, const PrimerSpec& spec) {
  auto statement = ComputeColumnsStatement(spec);
  if (!statement.ok()) return statement.status();
  auto columns = conn.ResultColumns(*statement);
  if (!columns.ok()) return Status::Invalid("compute: SQL does not prepare: " + columns.status().message());
  if (*columns == 1) return Status::Ok();
  return Status::Invalid("compute: returns " + std::to_string(*columns) +
                         " columns; it returns one, the product's value (jsonb_build_object(...) makes one of several)");
}

Status NoColumn(const TableInfo& t, const std::string& column, const std::string& where) {
  return Status::Invalid(where + ": table " + QuoteForError(t.qualified()) + " has no column " + QuoteForError(column));
}

// The columns a table rule maps or captures exist, with types its parameters accept.
Status ValidateTableRule(const PrimerSpec& spec, const DependsRule& rule, const TableInfo& t,
                         const std::string& where) {
  for (const auto& [param, column] : rule.params) {
    auto c = t.columns.find(column);
    if (c == t.columns.end()) return NoColumn(t, column, where);
    const ParamSpec* p = spec.FindParam(param);
    if (!Compatible(p->type, c->second.type)) {
      return Status::Invalid(where + ": column " + QuoteForError(column) + " is " + c->second.type + " but parameter " +
                             QuoteForError(param) + " is " + std::string(ParamTypeName(p->type)));
    }
  }
  for (const auto& column : rule.columns) {
    if (!t.columns.count(column)) return NoColumn(t, column, where);
  }
  for (const auto& column : rule.update_of) {
    if (!t.columns.count(column)) return NoColumn(t, column, where + ".update_of");
  }
  return Status::Ok();
}

// The row-image fields augment SQL reads (:new->>'title') become captured
// columns; a missing one would make the capture trigger fail, so it is
// rejected here. `spec.augment` is keyed by qualified table names.
Status ValidateAugmentColumns(const PrimerSpec& spec, const std::map<std::string, TableInfo>& tables) {
  for (const auto& [table, a] : spec.augment) {
    auto t = tables.find(table);
    if (t == tables.end()) continue;  // no rule reads the table: never captured
    for (const auto& [op, sql] : {std::pair{"insert", &a.insert_sql}, std::pair{"update", &a.update_sql},
                                  std::pair{"delete", &a.delete_sql}}) {
      std::set<std::string> columns;
      bool whole_row = false;
      AugmentColumns(*sql, &columns, &whole_row);
      for (const auto& c : columns) {
        if (!t->second.columns.count(c)) return NoColumn(t->second, c, "augment." + table + "." + op);
      }
    }
  }
  return Status::Ok();
}

// Checks one primer against the catalog and rewrites its table names to
// their qualified form. `tables` caches catalog reads.
Status ValidatePrimer(pg::Connection& conn, PrimerSpec& spec, std::map<std::string, TableInfo>& tables) {
  auto table_info = [&](const std::string& name) -> StatusOr<TableInfo> {
    auto it = tables.find(name);
    if (it != tables.end()) return it->second;
    auto t = ReadTable(conn, name);
    if (!t.ok()) return t.status();
    tables[name] = *t;
    tables[t->qualified()] = *t;
    return t;
  };
  std::map<std::string, std::string> renamed;  // as written -> qualified
  for (size_t i = 0; i < spec.depends_on.size(); ++i) {
    DependsRule& rule = spec.depends_on[i];
    std::string where = "depends_on[" + std::to_string(i) + "]";
    if (rule.kind == DependsRule::Kind::kPrimer) continue;
    auto t = table_info(rule.table);
    if (!t.ok()) return t.status().WithContext(where);
    renamed[rule.table] = t->qualified();
    rule.table = t->qualified();
    KCK_RETURN_IF_ERROR(ValidateTableRule(spec, rule, *t, where));
  }
  std::map<std::string, AugmentSql> augment;
  for (auto& [table, a] : spec.augment) augment[renamed.count(table) ? renamed[table] : table] = a;
  spec.augment = std::move(augment);
  KCK_RETURN_IF_ERROR(ValidateAugmentColumns(spec, tables));

  // Compile (placeholders) and prepare every piece of SQL.
  auto compiled = CompilePrimer(spec);
  if (!compiled.ok()) return compiled.status();
  const Primer& primer = **compiled;
  if (!spec.compute.empty()) {
    KCK_RETURN_IF_ERROR(PrepareCheck(conn, primer.compute, "compute"));
    KCK_RETURN_IF_ERROR(OneColumn(conn, spec));
  }
  if (!spec.warm.empty()) {
    Status s = PrepareCheck(conn, WarmStatement(spec), "warm");
    if (!s.ok()) return Status::Invalid(s.message() + " (warm returns one column per parameter, named as it)");
  }
  for (const auto& [i, keys] : primer.keys) {
    KCK_RETURN_IF_ERROR(PrepareCheck(conn, keys, "depends_on[" + std::to_string(i) + "].keys"));
  }
  for (const auto& [table, ops] : primer.augment) {
    for (const auto& [op, sql] : ops) {
      const char* name = op == 'I' ? "insert" : op == 'U' ? "update" : "delete";
      KCK_RETURN_IF_ERROR(PrepareCheck(conn, sql, "augment." + table + "." + name));
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<PrimerSpec>> ReadRegisteredPrimers(pg::Connection& conn) {
  auto exists = conn.Exec("SELECT to_regclass('kck.primers') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->get(0, 0) != "t") return std::vector<PrimerSpec>();
  auto rows = conn.Exec(kRegistrySql);
  if (!rows.ok()) return rows.status();
  return ParseRegistryRows(*rows);
}

}  // namespace

void AugmentColumns(std::string_view sql, std::set<std::string>* columns, bool* whole_row) {
  static const std::regex field(R"(:(old|new)\s*->>?\s*'([^']+)')");
  static const std::regex any(R"(:(old|new)\b)");
  size_t fields = 0;
  std::string text(sql);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), field); it != std::sregex_iterator(); ++it) {
    columns->insert((*it)[2].str());
    ++fields;
  }
  size_t uses = std::distance(std::sregex_iterator(text.begin(), text.end(), any), std::sregex_iterator());
  if (uses > fields) *whole_row = true;
}

namespace {

// What each table must capture, from every registered primer.
std::map<std::string, CaptureSpec> CaptureSpecs(const std::vector<PrimerSpec>& primers,
                                                const std::map<std::string, TableInfo>& tables) {
  std::map<std::string, CaptureSpec> out;
  std::map<std::string, std::set<std::string>> columns;
  auto spec_for = [&](const TableInfo& t) -> CaptureSpec& {
    CaptureSpec& c = out[t.qualified()];
    c.schema = t.schema;
    c.name = t.name;
    c.key_columns = t.key_columns;
    return c;
  };
  for (const auto& p : primers) {
    for (const auto& rule : p.depends_on) {
      if (rule.kind == DependsRule::Kind::kPrimer) {
        CaptureSpec& c = out["kck.cache"];
        c.schema = "kck";
        c.name = "cache";
        c.key_columns = {"key"};
        // The planner maps a product image to dependents by its key and primer.
        columns["kck.cache"].insert({"key", "primer"});
        continue;
      }
      auto t = tables.find(rule.table);
      if (t == tables.end()) continue;  // validated before; absent only if dropped since
      CaptureSpec& c = spec_for(t->second);
      auto& cols = columns[c.qualified()];
      for (const auto& [param, column] : rule.params) cols.insert(column);
      // Augment SQL reads the row images too: :new->>'title' needs title.
      if (auto a = p.augment.find(rule.table); a != p.augment.end()) {
        for (const auto* sql : {&a->second.insert_sql, &a->second.update_sql, &a->second.delete_sql}) {
          AugmentColumns(*sql, &cols, &c.whole_row);
        }
      }
      if (rule.kind == DependsRule::Kind::kTableKeys && rule.columns.empty()) c.whole_row = true;
      cols.insert(rule.columns.begin(), rule.columns.end());
      cols.insert(rule.update_of.begin(), rule.update_of.end());  // the planner compares them
    }
  }
  for (auto& [name, c] : out) c.columns.assign(columns[name].begin(), columns[name].end());
  return out;
}

// The end of the quoted text (a literal or an identifier) that starts at
// `i`, where a doubled quote stands for itself.
size_t QuotedEnd(std::string_view sql, size_t i) {
  const char quote = sql[i];
  for (++i; i < sql.size(); ++i) {
    if (sql[i] != quote) continue;
    if (i + 1 < sql.size() && sql[i + 1] == quote) {
      ++i;
    } else {
      return i + 1;
    }
  }
  return sql.size();
}

// The end of the digits from `i`.
size_t DigitsEnd(std::string_view sql, size_t i) {
  while (i < sql.size() && std::isdigit(static_cast<unsigned char>(sql[i]))) ++i;
  return i;
}

// `sql` with each $n replaced by literals[n-1], except in comments and
// quoted text: the comments of the SQL files name the parameters ("$1
// name"), and a literal of several lines there would leave the comment.
std::string WithLiterals(std::string_view sql, const std::vector<std::string>& literals) {
  std::string out;
  size_t i = 0;
  while (i < sql.size()) {
    size_t next = i + 1;
    if (sql.compare(i, 2, "--") == 0) {
      next = std::min(sql.find('\n', i), sql.size());
    } else if (sql[i] == '\'' || sql[i] == '"') {
      next = QuotedEnd(sql, i);
    } else if (sql[i] == '$' && DigitsEnd(sql, i + 1) > i + 1) {
      next = DigitsEnd(sql, i + 1);
      const size_t n = std::stoul(std::string(sql.substr(i + 1, next - i - 1)));
      if (n >= 1 && n <= literals.size()) {
        out += literals[n - 1];
        i = next;
        continue;
      }
    }
    out.append(sql.substr(i, next - i));
    i = next;
  }
  return out;
}

// Runs a statement, or only records it in a dry run.
class Runner {
 public:
  Runner(pg::Connection& conn, bool dry_run, InstallReport& report)
      : conn_(conn), dry_run_(dry_run), report_(report) {}

  Status Script(const std::string& sql) {
    report_.sql += sql;
    if (!sql.empty() && sql.back() != '\n') report_.sql += "\n";
    return dry_run_ ? Status::Ok() : conn_.ExecScript(sql);
  }
  // Bound parameters for the real run; quoted literals only in the listing.
  Status Exec(const std::string& sql, const pg::Params& params) {
    List(sql, params);
    if (dry_run_) return Status::Ok();
    auto r = conn_.Exec(sql, params);
    return r.ok() ? Status::Ok() : r.status();
  }
  // Runs `sql` and returns how many rows it affected; a dry run lists it and
  // returns what `count_sql` (a read-only count of the same rows) says.
  StatusOr<long long> Count(const std::string& sql, const std::string& count_sql, const pg::Params& params) {
    List(sql, params);
    auto r = dry_run_ ? conn_.Exec(count_sql, params)
                      : conn_.Exec("WITH kck_d AS (" + sql + " RETURNING 1) SELECT count(*) FROM kck_d", params);
    if (!r.ok()) return r.status();
    return std::stoll(std::string(r->get(0, 0)));
  }

 private:
  void List(const std::string& sql, const pg::Params& params) {
    std::vector<std::string> literals;
    for (const auto& p : params) literals.push_back(p ? conn_.QuoteLiteral(*p) : "NULL");
    report_.sql += WithLiterals(sql, literals) + ";\n";
  }

  pg::Connection& conn_;
  bool dry_run_;
  InstallReport& report_;
};

class Transaction {
 public:
  explicit Transaction(pg::Connection& conn) : conn_(conn) {}
  ~Transaction() {
    if (open_) (void)conn_.ExecScript("ROLLBACK");
  }
  Status Begin() {
    KCK_RETURN_IF_ERROR(conn_.ExecScript("BEGIN"));
    open_ = true;
    return Status::Ok();
  }
  Status Finish(bool commit) {
    open_ = false;
    return conn_.ExecScript(commit ? "COMMIT" : "ROLLBACK");
  }

 private:
  pg::Connection& conn_;
  bool open_ = false;
};

// Unregisters a primer that its source no longer lists; its products go
// with it (the kck.cache capture records their deletion like any write).
Status RemovePrimer(Runner& run, const std::string& name, InstallReport& report) {
  KCK_RETURN_IF_ERROR(run.Exec("DELETE FROM kck.primers WHERE name = $1", {name}));
  auto deleted =
      run.Count("DELETE FROM kck.cache WHERE primer = $1", "SELECT count(*) FROM kck.cache WHERE primer = $1", {name});
  if (!deleted.ok()) return deleted.status().WithContext("primer " + QuoteForError(name) + ": deleting its products");
  report.lines.push_back("primer " + name + ": removed (" + std::to_string(*deleted) + " products deleted)");
  report.changed = true;
  return Status::Ok();
}

}  // namespace

Status MigrateSchema(pg::Connection& conn, std::string* sql) {
  const std::string bootstrap =
      "CREATE SCHEMA IF NOT EXISTS kck;\n"
      "CREATE TABLE IF NOT EXISTS kck.schema_version (version integer PRIMARY KEY, name text NOT NULL, "
      "applied_at timestamptz NOT NULL DEFAULT now());\n";
  auto exists = conn.Exec("SELECT to_regclass('kck.schema_version') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->get(0, 0) != "t") {
    *sql += bootstrap;
    KCK_RETURN_IF_ERROR(conn.ExecScript(bootstrap));
  }
  KCK_RETURN_IF_ERROR(conn.ExecScript(kInstallLock));
  auto v = conn.Exec("SELECT coalesce(max(version), 0) FROM kck.schema_version");
  if (!v.ok()) return v.status();
  int current = std::stoi(std::string(v->get(0, 0)));
  for (const auto& f : sql::EmbeddedFiles()) {
    std::string name(f.name);
    if (name.size() < 4 || !std::isdigit(static_cast<unsigned char>(name[0])) || name[3] != '_') continue;
    int version = std::stoi(name.substr(0, 3));
    if (version <= current) continue;
    const std::string record = "INSERT INTO kck.schema_version (version, name) VALUES (" + std::to_string(version) +
                               ", " + conn.QuoteLiteral(name) + ");\n";
    *sql += "-- migration " + name + "\n" + std::string(f.text) + "\n" + record;
    Status s = conn.ExecScript(f.text);
    if (!s.ok()) return s.WithContext("migration " + name);
    KCK_RETURN_IF_ERROR(conn.ExecScript(record));
  }
  return Status::Ok();
}

// The primers after this install: those of other sources stay as
// registered, those of this config's source are replaced.
StatusOr<std::vector<PrimerSpec>> MergedPrimers(const Config& config, const std::vector<PrimerSpec>& registered) {
  std::vector<PrimerSpec> merged;
  std::map<std::string, std::string> source_of;
  for (const auto& p : registered) {
    source_of[p.name] = p.source;
    if (p.source != config.source) merged.push_back(p);
  }
  for (const auto& p : config.primers) {
    auto it = source_of.find(p.name);
    if (it != source_of.end() && it->second != config.source) {
      return Status::Invalid("primer " + QuoteForError(p.name) + ": already registered by " +
                             QuoteForError(it->second));
    }
    merged.push_back(p);
  }
  KCK_RETURN_IF_ERROR(CheckPrimerGraph(merged));
  return merged;
}

// The tables of primers registered by other sources (this config's were
// read while validating it).
Status ReadOtherTables(pg::Connection& conn, const std::vector<PrimerSpec>& merged,
                       std::map<std::string, TableInfo>& tables) {
  for (const auto& p : merged) {
    for (const auto& r : p.depends_on) {
      if (r.kind == DependsRule::Kind::kPrimer || tables.count(r.table)) continue;
      auto t = ReadTable(conn, r.table);
      if (!t.ok()) return t.status().WithContext("primer " + QuoteForError(p.name));
      tables[r.table] = *t;
    }
  }
  return Status::Ok();
}

// kck.primers.client_compute by primer name (NULL: none stored).
using ClientComputes = std::map<std::string, std::optional<std::string>>;

StatusOr<ClientComputes> ReadClientComputes(pg::Connection& conn) {
  auto rows = conn.Exec(std::string(sql::File("installer_client_computes.sql")));
  if (!rows.ok()) return rows.status();
  ClientComputes out;
  for (int i = 0; i < rows->rows(); ++i) out[std::string(rows->get(i, 0))] = rows->get_opt(i, 1);
  return out;
}

// What kck.primers.client_compute holds for `p`: sql primers only.
StatusOr<std::optional<std::string>> ClientComputeOf(const PrimerSpec& p) {
  if (p.engine != "sql") return std::optional<std::string>();
  auto sql = ClientComputeStatement(p);
  if (!sql.ok()) return sql.status();
  return std::optional<std::string>(*sql);
}

// Whether products computed under `before` may differ from what `after`
// computes: any change but to when they are computed (expiry, schedules,
// warm-ups) or to what registered them.
bool ValuesMayDiffer(const PrimerSpec& before, const PrimerSpec& after) {
  auto what = [](const PrimerSpec& p) {
    nlohmann::json j = PrimerToJson(p);
    for (const char* when : {"source", "warm", "warm_every", "refresh_every", "soft_expire", "hard_expire",
                             "augment_max_changes"}) {
      j.erase(when);
    }
    return j.dump();
  };
  return what(before) != what(after);
}

// The stored products of redefined primers were computed the old way: one
// refresh request for all of a primer's, which the daemons take once this
// install commits (sql/019_primers_redefined.sql). Under the primers'
// locks, taken as a daemon takes them: a reader computing one of their
// products has stored it, and is counted. Returns how many each has.
StatusOr<std::vector<long long>> QueueRecomputes(Runner& run, pg::Connection& conn,
                                                 const std::vector<std::string>& primers) {
  std::vector<long long> stored;
  if (primers.empty()) return stored;
  KCK_RETURN_IF_ERROR(run.Exec("SELECT kck.lock_primers($1::text[])", {pg::ArrayLiteral(primers)}));
  for (const auto& primer : primers) {
    auto count = conn.Exec("SELECT count(*) FROM kck.cache WHERE primer = $1", {primer});
    if (!count.ok()) return count.status().WithContext("primer " + QuoteForError(primer));
    stored.push_back(std::stoll(std::string(count->get(0, 0))));
    if (stored.back() == 0) continue;  // any stored from now on is computed the new way
    KCK_RETURN_IF_ERROR(run.Exec("INSERT INTO kck.changes (tbl, op, new) "
                                 "VALUES ('kck.refresh', 'U', jsonb_build_object('primer', $1::text))",
                                 {primer}));
  }
  return stored;
}

// Registers the config's primers and removes its source's others. A primer
// registered before schema 11 gets its client compute (same spec: "unchanged").
Status WriteRegistry(Runner& run, pg::Connection& conn, const Config& config,
                     const std::vector<PrimerSpec>& registered, InstallReport& report) {
  std::map<std::string, const PrimerSpec*> before;
  for (const auto& p : registered) before[p.name] = &p;
  auto stored_clients = ReadClientComputes(conn);
  if (!stored_clients.ok()) return stored_clients.status();
  std::set<std::string> wanted;
  std::vector<std::string> redefined;
  std::vector<size_t> redefined_lines;
  for (const auto& p : config.primers) {
    wanted.insert(p.name);
    std::string spec = PrimerToJson(p).dump();
    auto client = ClientComputeOf(p);
    if (!client.ok()) return client.status();
    auto it = before.find(p.name);
    if (it != before.end() && PrimerToJson(*it->second).dump() == spec) {
      if ((*stored_clients)[p.name] != *client) {
        KCK_RETURN_IF_ERROR(run.Exec(std::string(sql::File("installer_client_compute.sql")), {p.name, *client}));
      }
      report.lines.push_back("primer " + p.name + ": unchanged");
      continue;
    }
    KCK_RETURN_IF_ERROR(
        run.Exec(std::string(sql::File("installer_register.sql")), {p.name, spec, p.engine, *client}));
    if (it != before.end() && ValuesMayDiffer(*it->second, p)) {
      redefined.push_back(p.name);
      redefined_lines.push_back(report.lines.size());
    }
    report.lines.push_back("primer " + p.name + (it == before.end() ? ": registered" : ": updated"));
    report.changed = true;
  }
  auto stored = QueueRecomputes(run, conn, redefined);
  if (!stored.ok()) return stored.status();
  for (size_t i = 0; i < redefined.size(); ++i) {
    if ((*stored)[i] > 0) {
      report.lines[redefined_lines[i]] += " (its " + std::to_string((*stored)[i]) + " stored products will be recomputed)";
    }
  }
  for (const auto& p : registered) {
    if (p.source != config.source || wanted.count(p.name)) continue;
    KCK_RETURN_IF_ERROR(RemovePrimer(run, p.name, report));
  }
  return Status::Ok();
}

// What kck.triggers records: table -> (function, definition).
using InstalledCaptures = std::map<std::string, std::pair<std::string, std::string>>;

StatusOr<InstalledCaptures> ReadInstalledCaptures(pg::Connection& conn) {
  auto rows = conn.Exec("SELECT tbl, function, definition FROM kck.triggers");
  if (!rows.ok()) return rows.status();
  InstalledCaptures installed;
  for (int i = 0; i < rows->rows(); ++i) {
    installed[std::string(rows->get(i, 0))] = {std::string(rows->get(i, 1)), std::string(rows->get(i, 2))};
  }
  return installed;
}

// Whether the catalog still holds exactly the capture kck.triggers records
// (a dropped, disabled or edited trigger is put back).
StatusOr<bool> CaptureIsLive(pg::Connection& conn, const CaptureSpec& spec, const CaptureSql& sql,
                             const Quoter& quoter) {
  auto live = conn.Exec(sql::File("installer_live_capture.sql"),
                        {sql.function + "()", quoter.ident(spec.schema) + "." + quoter.ident(spec.name)});
  if (!live.ok()) return live.status();
  return live->get(0, 0) == sql.body && live->get(0, 1) == "4";
}

// A config setting, else the environment's, else the default.
std::string Setting(const std::string& configured, const char* env, const char* fallback) {
  if (!configured.empty()) return configured;
  const char* value = std::getenv(env);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// Whether the server loads the C capture from `library`: the error if not.
StatusOr<std::string> LoadError(pg::Connection& conn, const Quoter& q, const std::string& library) {
  // First what can be told without an error in the server's log.
  auto super = conn.Exec("SELECT rolsuper, current_user FROM pg_roles WHERE rolname = current_user");
  if (!super.ok()) return super.status();
  if (super->get(0, 0) != "t") return "role " + QuoteForError(super->get(0, 1)) + " is not a superuser";
  if (library.rfind("$libdir/", 0) == 0) {
    auto file = conn.Exec(sql::File("installer_capture_library.sql"), {library});
    if (!file.ok()) return file.status();
    if (file->get(0, 1) != "t") return "no file " + std::string(file->get(0, 0)) + " on the database server";
  }
  KCK_RETURN_IF_ERROR(conn.ExecScript("SAVEPOINT kck_capture_probe"));
  Status probe = conn.ExecScript("CREATE FUNCTION kck.capture_probe() RETURNS trigger LANGUAGE c AS " +
                                 q.literal(library) + ", 'kck_capture'");
  KCK_RETURN_IF_ERROR(conn.ExecScript("ROLLBACK TO SAVEPOINT kck_capture_probe; RELEASE SAVEPOINT kck_capture_probe"));
  if (probe.ok()) return std::string();
  const std::string& message = probe.message();
  return message.substr(0, message.find('\n'));
}

// The library of the C capture that tables get, empty for plpgsql
// (docs/DESIGN.md, "Capture in C"): "auto" takes it when the server loads
// it (that takes a superuser), "c" insists.
StatusOr<std::string> CaptureLibrary(pg::Connection& conn, const Quoter& q, const Config& config,
                                     InstallReport& report) {
  const std::string mode = Setting(config.capture, "KCK_CAPTURE", "auto");
  KCK_RETURN_IF_ERROR(CheckCaptureMode(mode));
  if (mode == "plpgsql") return std::string();
  const std::string library = Setting(config.capture_library, "KCK_CAPTURE_LIBRARY", "$libdir/kck_capture");
  auto error = LoadError(conn, q, library);
  if (!error.ok()) return error.status();
  if (error->empty()) return library;
  if (mode == "c") return Status::Invalid("capture \"c\": the server cannot load " + library + ": " + *error);
  report.lines.push_back("captures in plpgsql: the C capture is not available (" + *error + ")");
  return std::string();
}

// A table whose capture was missing (never installed, uninstalled, dropped
// or disabled) had writes nobody captured: when products are stored, a
// whole-table change after the new capture (in this transaction, which
// waited for the table's writers to end as it created the trigger) makes
// the daemons recompute every product that depends on it. `why` is
// "installed" or "repaired". Returns whether one was queued.
StatusOr<bool> QueueTableRecompute(Runner& run, pg::Connection& conn, const std::string& tbl, const std::string& why) {
  auto stored = conn.Exec("SELECT EXISTS (SELECT 1 FROM kck.cache)");
  if (!stored.ok()) return stored.status();
  if (stored->get(0, 0) != "t") return false;
  KCK_RETURN_IF_ERROR(run.Exec("INSERT INTO kck.changes (tbl, op, new) "
                               "VALUES ($1, 'T', jsonb_build_object('capture', $2::text))",
                               {tbl, why}));
  return true;
}

// Installs, updates or repairs one table's capture unless it is live as generated.
Status InstallCapture(pg::Connection& conn, Runner& run, const std::string& tbl, const CaptureSpec& spec,
                      const InstalledCaptures& installed, const Quoter& quoter, std::string_view c_library,
                      InstallReport& report) {
  CaptureSql sql = GenerateCapture(spec, quoter, c_library);
  auto it = installed.find(tbl);
  const bool recorded = it != installed.end() && it->second.second == sql.install;
  if (recorded) {
    auto live = CaptureIsLive(conn, spec, sql, quoter);
    if (!live.ok()) return live.status();
    if (*live) {
      // Recorded before schema 22: the columns it reads, for kck status.
      auto noted = conn.Exec("UPDATE kck.triggers SET columns = $2::text[] WHERE tbl = $1 AND columns IS NULL",
                             {tbl, pg::ArrayLiteral(spec.row_columns())});
      if (!noted.ok()) return noted.status();
      report.lines.push_back("table " + tbl + ": capture trigger unchanged");
      return Status::Ok();
    }
  }
  if (it != installed.end() && it->second.first != sql.function) {
    KCK_RETURN_IF_ERROR(run.Script(GenerateUninstall(spec.schema, spec.name, it->second.first, quoter)));
  }
  Status s = run.Script(sql.install);
  if (!s.ok()) return s.WithContext("table " + QuoteForError(tbl) + ": installing capture trigger");
  const std::string record(sql::File("installer_record_capture.sql"));
  KCK_RETURN_IF_ERROR(run.Exec(record, {tbl, sql.function, sql.install, pg::ArrayLiteral(spec.row_columns())}));
  std::string cols;
  for (const auto& c : spec.row_columns()) cols += (cols.empty() ? "" : ", ") + c;
  const std::string done = it == installed.end() ? "installed" : recorded ? "repaired" : "updated";
  std::string line = "table " + tbl + ": capture trigger " + done + " (" + (sql.in_c ? "C" : "plpgsql") +
                     ", captures " + (spec.whole_row ? std::string("whole rows") : cols) + ")";
  if (done != "updated") {
    auto queued = QueueTableRecompute(run, conn, tbl, done);
    if (!queued.ok()) return queued.status().WithContext("table " + QuoteForError(tbl));
    if (*queued) line += "; the stored products that depend on it will be recomputed";
  }
  report.lines.push_back(line);
  report.changed = true;
  return Status::Ok();
}

// Capture triggers for every registered primer's tables; those of tables
// no primer depends on any more are removed.
Status InstallCaptures(pg::Connection& conn, Runner& run, const Config& config, const std::vector<PrimerSpec>& merged,
                       const std::map<std::string, TableInfo>& tables, InstallReport& report) {
  auto installed = ReadInstalledCaptures(conn);
  if (!installed.ok()) return installed.status();
  Quoter quoter = LibpqQuoter(conn);
  auto c_library = CaptureLibrary(conn, quoter, config, report);
  if (!c_library.ok()) return c_library.status();
  auto specs = CaptureSpecs(merged, tables);
  for (const auto& [tbl, spec] : specs) {
    KCK_RETURN_IF_ERROR(InstallCapture(conn, run, tbl, spec, *installed, quoter, *c_library, report));
  }
  for (const auto& [tbl, fn] : *installed) {
    if (specs.count(tbl)) continue;
    auto dot = tbl.find('.');
    KCK_RETURN_IF_ERROR(run.Script(GenerateUninstall(tbl.substr(0, dot), tbl.substr(dot + 1), fn.first, quoter)));
    KCK_RETURN_IF_ERROR(run.Exec("DELETE FROM kck.triggers WHERE tbl = $1", {tbl}));
    report.lines.push_back("table " + tbl + ": capture trigger removed");
    report.changed = true;
  }
  return Status::Ok();
}

StatusOr<InstallReport> Install(pg::Connection& conn, const Config& input, bool dry_run) {
  InstallReport report;
  Config config = input;
  // One transaction for everything: a dry run runs the migrations and the
  // checks too (primer SQL may read kck.cache) and then rolls back.
  Transaction txn(conn);
  KCK_RETURN_IF_ERROR(txn.Begin());
  KCK_RETURN_IF_ERROR(MigrateSchema(conn, &report.sql));
  std::map<std::string, TableInfo> tables;
  for (auto& spec : config.primers) {
    Status s = ValidatePrimer(conn, spec, tables);
    if (!s.ok()) return s.WithContext("primer " + QuoteForError(spec.name));
  }
  auto registered = ReadRegisteredPrimers(conn);
  if (!registered.ok()) return registered.status();
  auto merged = MergedPrimers(config, *registered);
  if (!merged.ok()) return merged.status();
  KCK_RETURN_IF_ERROR(ReadOtherTables(conn, *merged, tables));

  Runner run(conn, dry_run, report);
  KCK_RETURN_IF_ERROR(WriteRegistry(run, conn, config, *registered, report));
  // A Django sync follows a deploy: the primers' code may have changed even
  // where their specs did not, so daemons must restart their Python worker.
  const bool new_code = config.source == "django";
  if (new_code) KCK_RETURN_IF_ERROR(run.Exec("UPDATE kck.registry_generation SET generation = generation + 1", {}));
  KCK_RETURN_IF_ERROR(InstallCaptures(conn, run, config, *merged, tables, report));
  if (report.changed || new_code) KCK_RETURN_IF_ERROR(run.Script("NOTIFY kck_config;"));
  KCK_RETURN_IF_ERROR(txn.Finish(!dry_run));
  return report;
}

namespace {

StatusOr<InstallReport> UninstallOnce(pg::Connection& conn, bool drop_data, bool dry_run) {
  InstallReport report;
  Transaction txn(conn);
  KCK_RETURN_IF_ERROR(txn.Begin());
  Runner run(conn, dry_run, report);
  auto exists = conn.Exec("SELECT to_regclass('kck.triggers') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  Quoter quoter = LibpqQuoter(conn);
  // Also catch triggers whose kck.triggers row was lost: any kck_capture_*
  // trigger calling a function in schema kck.
  auto rows = conn.Exec(
      "SELECT DISTINCT n.nspname, c.relname, quote_ident(pn.nspname) || '.' || quote_ident(p.proname) "
      "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace "
      "WHERE t.tgname LIKE 'kck\\_capture\\_%' AND pn.nspname = 'kck' ORDER BY 1, 2");
  if (!rows.ok()) return rows.status();
  for (int i = 0; i < rows->rows(); ++i) {
    std::string schema(rows->get(i, 0)), name(rows->get(i, 1)), fn(rows->get(i, 2));
    KCK_RETURN_IF_ERROR(run.Script(GenerateUninstall(schema, name, fn, quoter)));
    report.lines.push_back("table " + schema + "." + name + ": capture trigger removed");
    report.changed = true;
  }
  if (exists->get(0, 0) == "t") KCK_RETURN_IF_ERROR(run.Script("DELETE FROM kck.triggers;"));
  if (drop_data) {
    auto schema = conn.Exec("SELECT to_regnamespace('kck') IS NOT NULL");
    if (!schema.ok()) return schema.status();
    if (schema->get(0, 0) == "t") {
      KCK_RETURN_IF_ERROR(run.Script("DROP SCHEMA kck CASCADE;"));
      report.lines.push_back("schema kck: dropped");
      report.changed = true;
    }
  } else if (report.changed) {
    KCK_RETURN_IF_ERROR(run.Script("NOTIFY kck_config;"));
  }
  KCK_RETURN_IF_ERROR(txn.Finish(!dry_run));
  return report;
}

}  // namespace

StatusOr<InstallReport> Uninstall(pg::Connection& conn, bool drop_data, bool dry_run) {
  // DROP SCHEMA locks every kck object, in an order of its own: under a
  // running daemon it can deadlock with a batch, and the one that loses is
  // either. Uninstall tries again; the daemon rolls back and retries anyway.
  for (int attempt = 1;; ++attempt) {
    auto report = UninstallOnce(conn, drop_data, dry_run);
    if (report.ok() || report.status().sqlstate() != "40P01" || attempt == 3) return report;
  }
}

}  // namespace kck
