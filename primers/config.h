// Primer specifications: parsing and shape-checking the JSON config that
// `kck install --config` reads and that kck.primers.spec stores.
//
// Checks here need no database (names, types, periods, references between
// primers, placeholders). Checks against the catalog (tables, columns, SQL
// that prepares) are in primers/installer.h.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "primers/import_spec.h"
#include "primers/key_codec.h"

namespace kck {

// One entry of a primer's depends_on.
struct DependsRule {
  enum class Kind {
    kTableParams,  // {"table": T, "params": {param: column}}
    kTableKeys,    // {"table": T, "keys": SQL given :old/:new, "columns": [...]}
    kPrimer,       // {"primer": P, "params": {param: param_of_P}}
  };
  Kind kind = Kind::kTableParams;
  std::string table;   // kTableParams/kTableKeys: as written, then qualified by the installer
  std::string primer;  // kPrimer
  // param of this primer -> column (tables) or param of `primer`. A param
  // left out matches every value: all stored keys agreeing on the others.
  std::map<std::string, std::string> params;
  std::string keys_sql;              // kTableKeys
  // Extra columns to capture: for kTableKeys the columns its SQL reads
  // (empty: whole rows); for kTableParams the columns an augment reads.
  std::vector<std::string> columns;
  // Table rules: an UPDATE reaches this rule's products only when it changes
  // one of these columns (empty: every UPDATE does). Captured too.
  std::vector<std::string> update_of;
  // Python primers: the index of the rule in the Python class, for keys
  // rules evaluated by the worker (keys_sql is empty then).
  std::optional<int> python_rule;
};

// Augment SQL for one table: empty string when that op has none.
struct AugmentSql {
  std::string insert_sql, update_sql, delete_sql;
  const std::string& ForOp(char op) const;
};

struct PrimerSpec {
  std::string name;
  std::vector<ParamSpec> params;
  std::string engine = "sql";  // "sql", "python", "http" or "command" (config: "engine" or "kind")
  std::string compute;         // sql engine: SQL with :param placeholders
  std::vector<DependsRule> depends_on;
  std::map<std::string, AugmentSql> augment;  // by table (sql engine)
  bool python_augment = false;                // python engine: class defines augment()
  // More changes than this for one key in one batch: the key is recomputed
  // once instead of augmented change by change.
  size_t augment_max_changes = 100;
  std::optional<std::chrono::seconds> refresh_every, soft_expire, hard_expire;
  // SQL returning the keys worth computing before anyone asks: one row per
  // key, one column per parameter named as the parameter (primers/warm.h).
  std::string warm;
  bool python_warm = false;  // python engine: the class defines warm(), the worker runs it
  std::optional<std::chrono::seconds> warm_every;  // the daemon warms again this often
  ImportSpec import;  // kinds http and command
  std::string source = "config";  // who registered it: "config" or "django"

  const ParamSpec* FindParam(std::string_view param) const;
  // Whether the primer lists keys to prepare ahead (warm SQL or a Python warm()).
  bool Warms() const { return !warm.empty() || python_warm; }
};

struct Config {
  std::string source = "config";
  std::vector<PrimerSpec> primers;
  // How tables are captured (docs/DESIGN.md, "Capture in C"): "auto" (the C
  // module when the server loads it, else plpgsql), "c" (the C module or an
  // error) or "plpgsql"; empty: $KCK_CAPTURE, else "auto".
  std::string capture;
  // Where the server finds the C module; empty: $KCK_CAPTURE_LIBRARY, else
  // "$libdir/kck_capture".
  std::string capture_library;
};

// `mode` is a capture setting ("auto", "c" or "plpgsql"; Config::capture).
Status CheckCaptureMode(const std::string& mode);

// Parses and shape-checks a config document. `origin` (a file name) starts
// every error: `primers.json: primer "title_list": depends_on[0]: ...`.
StatusOr<Config> ParseConfig(std::string_view json_text, std::string_view origin);

// One primer from its JSON form (a config entry or kck.primers.spec).
StatusOr<PrimerSpec> ParsePrimer(const nlohmann::json& j);

// The JSON stored in kck.primers.spec; ParsePrimer reads it back.
nlohmann::json PrimerToJson(const PrimerSpec& spec);

// Checks references between primers: primer rules name existing primers
// and parameters, no cycles, no duplicate names.
Status CheckPrimerGraph(const std::vector<PrimerSpec>& primers);

}  // namespace kck
