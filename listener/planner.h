// Planner: claimed changes -> the keys they affect, coalesced (one unit of
// work per key per batch). Pure: no database, no loop; the executor
// resolves what needs the database (keys SQL, partial matches).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "primers/registry.h"

namespace kck {

// One claimed row of kck.changes. old/new are JSON text (empty: NULL).
struct Change {
  long long id = 0;
  std::string tbl;
  char op = 'U';
  std::string old_json, new_json;
  std::string txid;  // xid8 as text
};

// A change's row images as JSON texts, one pair per source row.
struct RowPair {
  std::optional<std::string> old_row, new_row;
};

struct KeyWork {
  const Primer* primer = nullptr;
  std::vector<size_t> changes;  // indexes into the batch, ascending
  bool force = false;           // recompute even if not stored (kck.refresh)
  bool augmentable = true;      // every change is a row change with augment code
};

// Keys of `primer` whose parameters equal `fixed` (nullopt = any value).
struct PartialMatch {
  const Primer* primer;
  std::vector<std::optional<std::string>> fixed;
  size_t change;
  bool force = false;  // recomputed whatever their snapshot shows (a redefined primer)
};

// A keys rule to run for one row pair.
struct KeysQuery {
  const Primer* primer;
  size_t rule;
  size_t change;
  RowPair rows;
  bool row_change;  // the keys it returns may be augmented
};

// A change a capture trigger recorded in place of rows it could not read
// (a captured column renamed or dropped): op 'T', new = {"error": SQLERRM}.
struct DegradedCapture {
  std::string table;
  std::string error;
};

// A bulk statement recorded for its whole table: more distinct images than
// kck.bulk_max_images (triggers/capture.h, kBulkMaxImages).
struct WholeTableChange {
  std::string table;
  std::string why;  // "more than N distinct images: every product of the table"
};

struct Plan {
  std::map<std::string, KeyWork> keys;
  std::vector<PartialMatch> partial;
  std::vector<KeysQuery> keys_queries;
  std::vector<std::string> problems;  // malformed payloads, bad keys: one log line each
  std::vector<DegradedCapture> degraded;
  std::vector<WholeTableChange> whole_table;  // one info line each
  // Tables whose capture kck install created or repaired while products
  // were stored (why: "installed" or "repaired"): writes before it were not
  // captured. One info line each.
  std::vector<WholeTableChange> recaptured;

  // Adds a key (coalescing). `row_change` false marks it not augmentable.
  void AddKey(const std::string& key, const Primer* primer, size_t change, bool row_change, bool force = false);
  // Keys of `primer` whose decoded parameters agree with `fixed`.
  static bool Matches(const PartialMatch& m, const std::vector<std::string>& values);
};

// Splits a change's payload into row pairs. Bulk changes (arrays) become one
// pair per element with only one side set; *bulk tells which it was.
StatusOr<std::vector<RowPair>> RowPairs(const Change& change, bool* bulk);

// At most one warning per subject (a table) per period.
class WarningLimiter {
 public:
  explicit WarningLimiter(std::chrono::steady_clock::duration period) : period_(period) {}
  // Whether to warn about `subject` now; if so, the next one waits a period.
  bool Allow(const std::string& subject, std::chrono::steady_clock::time_point now);

 private:
  std::chrono::steady_clock::duration period_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_;  // subject -> last warning
};

// Maps a batch of changes to affected keys.
Plan PlanChanges(const std::vector<Change>& changes, const Registry& registry);

}  // namespace kck
