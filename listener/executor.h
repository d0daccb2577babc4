// Executor: runs one batch end to end on the daemon's connections.
//
//   BEGIN; read the registry generation; claim changes; COMMIT
//     (listener/intake.h, sql/007_claims.sql)   [claim]
//   plan (listener/planner.h), resolve (listener/resolver.h)   [plan]
//   read the stored rows; augment or recompute each stored (or forced) key
//     on the compute connection; no transaction is open   [compute]
//   BEGIN; lock the keys; check that each is stored as the first read
//     found it (kck.expect_products); consume the claim (delete its
//     changes), write values, errors and counters; COMMIT: one round trip
//     (listener/writer.h)   [lock, write, commit]
//   or, when a key was stored, changed or removed meanwhile (a reader
//   stored a miss, another writer wrote it: the check fails and the
//   transaction rolls back) and when the plan has partial matches:
//   BEGIN; settle: lock the primers listed for partial matches and list
//     them again, lock the keys, read the stored rows again; what moved is
//     computed again now, under the locks [lock]; then the writes and
//     COMMIT as above [write, commit]
//
// A batch of one transaction's changes to a few products of cheap sql
// primers skips the read and the separate compute: it is computed under
// the locks, inside the write transaction (listener/fast_write.cc), and
// falls back to the steps above when a compute fails, finds no row or is
// slow.
//
// So the transaction that holds key locks and a transaction id lasts from
// settle to COMMIT: a reader that misses a product waits for a batch's
// writes, not for its computes (but for a fast write's, each cut off at
// kFastTimeoutMs), and no long compute holds back the xmin horizon.
//
// The changes are consumed by the transaction that writes the products
// they change: a crash at any point leaves both undone, and the changes
// are claimed again (a dead daemon's claim is released by the others). A
// transient failure (lost connection, deadlock, timeout, dead Python
// worker) rolls the batch back and gives its claim up, so it is never
// recorded as the primer's fault and never consumes a change; only a
// failure that repeats on the same key is (see kMaxTransientTries). The
// [names] are the steps of listener/fault.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "pg/async_connection.h"
#include "listener/error_retry.h"
#include "listener/planner.h"
#include "listener/primer_timings.h"
#include "listener/import_engine.h"
#include "listener/python_engine.h"
#include "listener/worker_pool.h"
#include "listener/writer.h"
#include "primers/registry.h"
#include "primers/sql_engine.h"

namespace kck {

class Metrics;

struct BatchStats {
  size_t changes = 0;            // claimed and consumed
  size_t keys = 0;               // products written with a new value
  size_t unchanged = 0;          // recomputed to the value already stored: same version
  size_t augmented = 0;          // of which updated in place
  size_t removed = 0;            // computes that found nothing: product deleted
  size_t errors = 0;             // computes that failed (value kept, error set)
  size_t augment_fallbacks = 0;  // augments that failed and were recomputed
  size_t fresh = 0;              // stored products that already showed every change: not computed
  bool registry_moved = false;   // rolled back: the primers changed since they were loaded
  bool fast = false;             // computed in its write transaction (listener/fast_write.cc)

  // Adds another batch's counts to these.
  void Add(const BatchStats& other) {
    changes += other.changes;
    keys += other.keys;
    augmented += other.augmented;
    removed += other.removed;
    errors += other.errors;
    augment_fallbacks += other.augment_fallbacks;
    unchanged += other.unchanged;
    fresh += other.fresh;
  }
};

// Whether the transaction `txid` is visible in `snapshot` (pg_snapshot
// text "xmin:xmax:xip,..."): the compute that read the snapshot saw it.
bool VisibleInSnapshot(std::string_view snapshot, uint64_t txid);

// A change as the one row an augment applies; nullopt when it is not one
// row (a bulk change, an image that does not parse).
std::optional<ChangeImage> RowChange(const Change& c);

// How often in a row a key's compute may fail transiently before the
// failure counts as the key's own: a statement_timeout or worker timeout
// that repeats is the primer being too slow; other transient failures
// (connection, deadlock) get more tries.
inline constexpr int kMaxTimeoutTries = 3;
inline constexpr int kMaxTransientTries = 5;

// Older changes still in the outbox planned for a batch's augments; with
// more than this, no key of the batch is augmented.
inline constexpr size_t kOlderPlanned = 1000;
// How long a batch waits for an earlier claim that holds an older change of
// a key it would augment; after that the key is recomputed.
inline constexpr auto kMaxClaimWait = std::chrono::seconds(2);

// A batch that maps to at most kFastKeys keys, all of sql primers, none
// forced or augmented by several changes, whose last computes (or augments)
// took at most kFastBudgetMs together, is computed inside its write
// transaction, under the keys' locks
// (listener/fast_write.cc), whose statements may take kFastTimeoutMs at most.
inline constexpr size_t kFastKeys = 16;
inline constexpr double kFastBudgetMs = 10.0;
inline constexpr int kFastTimeoutMs = 50;
// How often Executor::Rehearse runs each cheap primer's statement: one more
// than the runs PostgreSQL plans with their own values.
inline constexpr int kRehearsals = 6;

class Executor {
 public:
  // `main` runs the batch transaction, `compute` runs primer SQL outside it
  // (so a failing compute cannot abort the batch); `worker` may be null.
  Executor(AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker, int batch_size);

  // Loads the primers and the registry generation they belong to.
  Task<Status> LoadRegistry();
  const Registry& registry() const { return *registry_; }
  // Goes up with every key a batch produces and every batch step: the
  // daemon's watchdog tells a slow batch from a stuck one by it.
  uint64_t progress() const { return progress_; }
  int64_t generation() const { return generation_; }
  // Claims and applies up to batch_size changes.
  Task<StatusOr<BatchStats>> RunBatch();
  // Recomputes up to batch_size products whose refresh_every has passed.
  Task<StatusOr<BatchStats>> RunScheduled();
  // Tries one product in error of each primer `retry` says is due, and
  // queues a recompute of the others of each whose probe computed
  // (listener/error_retry.h).
  Task<StatusOr<BatchStats>> RetryErrors(ErrorRetry& retry, std::chrono::steady_clock::time_point now);
  // What the batches timed per primer since the last call, for
  // kck.primer_stats (listener/primer_timings.h), or nullopt.
  std::optional<nlohmann::json> TakeTimings() { return timings_.TakeChanged(); }
  void TimingsNotPublished(const nlohmann::json& taken) { timings_.PublishFailed(taken); }
  // Where each compute's duration and each primer error is counted (may be null).
  void set_metrics(Metrics* metrics) { metrics_ = metrics; }

 private:
  struct Stored {
    std::string value;  // JSON text ("" for NULL or not read)
    std::string snapshot;
    std::string xmin;   // the row version: any write moves it
  };
  // What the batch did with one key; the stats are counted from these.
  enum class Outcome { kWritten, kAugmented, kRemoved, kError, kFresh };
  // Everything one batch carries from claim to commit.
  struct Batch {
    int64_t claim = 0;  // kck.claims id, 0 for none
    std::vector<Change> changes;
    Plan plan;
    std::map<std::string, Stored> stored;
    // Keys with an older change still in the outbox that no earlier claim
    // holds (it committed after the claim, or a later claim took it):
    // augmenting them would break id order, so they are recomputed.
    std::set<std::string> augment_held;
    std::set<const Primer*> augment_held_primers;  // ... any key of these
    bool augment_held_all = true;                  // ... or every key
    // Keys with an older change that an earlier claim holds: produced after
    // that claim is written (or released), from the value it wrote.
    std::set<std::string> wait_keys;
    std::set<int64_t> wait_claims;
    bool MayAugment(const std::string& key, const Primer* primer) const {
      return !augment_held_all && !augment_held.count(key) && !augment_held_primers.count(primer);
    }
    std::map<std::string, Computed> precomputed;
    std::map<std::string, Computed> preaugmented;  // keys augmented by one change, in the same round trip
    std::map<std::string, Outcome> outcomes;
    Writes writes;
    BatchStats stats;
  };
  Task<StatusOr<BatchStats>> Apply(Batch& batch);
  // listener/fast_write.cc: whether the batch may compute in its write
  // transaction, and doing so; false when it fell back (rolled back, the
  // claim still held), an error when the connection is lost.
  bool FastEligible(const Batch& batch) const;
  // Begins with the timings published and the compute times of the stored
  // products, and plans the cheap primers' statements ahead.
  Task<Status> Rehearse();
  Task<Status> RestoreTimings();
  Task<StatusOr<bool>> FastWrite(Batch& batch);
  void TallyFast(const std::vector<pg::Result>& results, size_t first, Batch& batch);
  // Reads the stored rows of `keys` (values of the augmentable ones) into
  // *out, after taking their key locks when `lock`.
  Task<Status> ReadStored(const Batch& batch, bool lock, bool begin, std::map<std::string, Stored>* out);
  Task<Status> Begin();
  Task<Status> ComputeAll(Batch& batch);
  Task<Status> Settle(Batch& batch);
  // The write transaction in one round trip, its keys checked under their
  // locks; *written stays false (rolled back) when a key moved.
  Task<Status> WriteChecked(Batch& batch, WriteCounts* counts, bool* written);
  std::vector<AsyncConnection::Statement> CheckedOpening(const Batch& batch) const;
  // Settle, then the writes and COMMIT.
  Task<Status> SettleAndWrite(Batch& batch, WriteCounts* counts);
  void Forget(const std::set<std::string>& keys, Batch& batch);
  void Tally(Batch& batch);
  // listener/augment_order.cc: which keys an older change keeps from
  // being augmented now, and producing the keys that wait for older claims.
  Task<Status> CheckAugmentOrder(Batch& batch);
  Task<Status> ProduceAfterOlderClaims(Batch& batch);
  // Whether every claim in `claims` was written or released within
  // kMaxClaimWait.
  Task<bool> WaitForClaims(const std::set<int64_t>& claims);
  Task<void> ComputeAhead(Batch& batch);
  Task<Status> ProduceKey(const std::string& key, const KeyWork& work, Batch& batch);
  // Whether the stored product already shows every change the batch has
  // for its key, so that it needs no compute.
  static bool AlreadyFresh(const KeyWork& work, const Stored& stored, const Batch& batch);
  // What a key of the batch needs: nothing (not stored, primed lazily on
  // read), nothing (already fresh), an augment (falls back to a recompute),
  // or a recompute. ComputeAhead and ProduceKey decide it alike.
  enum class Route { kNone, kFresh, kAugment, kRecompute };
  static Route RouteFor(const std::string& key, const KeyWork& work, const Batch& batch);
  void RecomputeWhereCheaper(Plan& plan) const;
  Task<StatusOr<std::optional<std::string>>> Augment(const std::string& key, const KeyWork& work,
                                                     const Stored& stored, Batch& batch);
  // Augment's value with its time, or the one computed ahead.
  Task<StatusOr<std::optional<Computed>>> Augmented(const std::string& key, const KeyWork& work,
                                                    const Stored& stored, Batch& batch);
  // The changes an augment of `key` applies to `stored` (those its
  // snapshot does not show), in id order; nullopt when one is not a single
  // row (a recompute must do).
  static std::optional<std::vector<ChangeImage>> AugmentChanges(const KeyWork& work, const Stored& stored,
                                                                const Batch& batch);
  // The engine of the primer's kind (primers/engine.h).
  Engine& EngineFor(const Primer& primer);
  // A transient compute failure of `key`: retry the batch, or, after too
  // many tries, a failure of the key.
  bool GivesUp(const std::string& key, const Status& failure);
  void RecordError(const std::string& key, const Primer& primer, const Status& failure, bool stored, Batch& batch);
  // Rolls the write transaction back, if one is open, and gives the claim up.
  Task<void> Abandon(int64_t claim);
  // The generation a write transaction checks the primers are still at
  // (GenerationCheck in listener/writer.h); nullopt before schema 19.
  std::optional<int64_t> GenerationToCheck() const;
  // A batch that failed because the primers changed meanwhile: not a
  // failure, the primers are reloaded before its changes are claimed again.
  static StatusOr<BatchStats> RegistryMovedOr(StatusOr<BatchStats> stats);
  // Computes one product in error of `primer` again (RetryErrors); whether
  // it computed, and the batch's counts into `total`.
  Task<StatusOr<bool>> Probe(const Primer& primer, const std::string& key, BatchStats* total);
  // Probes `primer` with `key`, then waits or queues the rest (RetryErrors).
  Task<Status> RetryPrimer(ErrorRetry& retry, const Primer& primer, std::string key,
                           std::chrono::steady_clock::time_point now, BatchStats* total);
  // Logs the plan's changes that recompute every product of their table.
  void LogWholeTableChanges(const Plan& plan);

  AsyncConnection& main_;
  AsyncConnection& compute_;
  WorkerPool* worker_;
  SqlEngine sql_;
  PythonEngine python_;
  ImportEngine import_;
  int batch_size_;
  std::shared_ptr<const Registry> registry_;
  int64_t generation_ = -1;
  uint64_t progress_ = 0;
  bool check_in_sql_ = true;  // kck.expect_products exists (schema 10)
  bool fast_in_sql_ = true;   // kck.expect_one_row exists (schema 12)
  bool generation_in_sql_ = false;  // kck.expect_generation exists (schema 19)
  PrimerTimings timings_;  // by primer: its last recompute, its augments
  Metrics* metrics_ = nullptr;
  std::map<std::string, int> transient_tries_;  // key -> transient failures in a row
  WarningLimiter degraded_warnings_{std::chrono::minutes(1)};  // one per table per minute
  WarningLimiter whole_table_notes_{std::chrono::minutes(1)};
};

}  // namespace kck
