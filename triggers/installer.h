// kck install / kck uninstall: schema migrations, validation of primers
// against the catalog, the registry in kck.primers, capture triggers.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "pg/connection.h"
#include "primers/config.h"

namespace kck {

struct InstallReport {
  std::vector<std::string> lines;  // one per action, for the user
  std::string sql;                 // every statement run or, in a dry run, that would run
  bool changed = false;            // false: the database already matched the config
};

// Brings the kck schema to the newest version, appending the SQL it runs to
// *sql. Call inside a transaction (a dry run rolls it back).
Status MigrateSchema(pg::Connection& conn, std::string* sql);

// Validates `config` against the catalog (tables, columns and their types,
// SQL that prepares), migrates the schema, replaces the registered primers
// of config.source with config's, and installs or updates capture triggers
// for every registered primer, all in one transaction. Running it twice
// changes nothing the second time. With dry_run nothing is changed and
// report.sql holds what would run. Errors name the primer and the field.
StatusOr<InstallReport> Install(pg::Connection& conn, const Config& config, bool dry_run);

// Removes every capture trigger kck installed; with drop_data also the kck
// schema and everything in it.
StatusOr<InstallReport> Uninstall(pg::Connection& conn, bool drop_data, bool dry_run);

// Adds the row-image fields that augment SQL reads (:new->>'title') to
// *columns; sets *whole_row when it uses :old/:new in any other way.
void AugmentColumns(std::string_view sql, std::set<std::string>* columns, bool* whole_row);

}  // namespace kck
