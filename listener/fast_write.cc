// Fast write: a batch of a few cheap recomputes, computed inside its write
// transaction.
//
// The usual batch reads the stored rows, computes without locks, then
// writes in a transaction that checks nothing moved meanwhile: with the
// claim, four round trips, and every value travels to the daemon and back.
// A batch that maps to at most kFastKeys keys, all of sql primers, none
// forced nor augmented by more than one change, and no partial match, whose
// computes took kFastBudgetMs at most together (each key timed by its
// primer's last recompute, or last augment for a key to augment), runs
//
//   BEGIN; consume the claim; lock the keys; statement_timeout kFastTimeoutMs;
//   [when a key is to be augmented: no change older than the batch's is in
//   the outbox (sql/daemon_fast_older.sql), else the normal path, which
//   orders augments across daemons (listener/augment_order.cc)];
//   per key, Primer::compute_write (read the stored row, compute it if it is
//   stored, update it: a new version only for a new value), or for a key to
//   augment AugmentWrite (primers/augment_chain.h: its change applied to the
//   stored value unless the snapshot of the last compute shows it); COMMIT
//
// in one round trip: two with the claim. That holds for one transaction's
// change (the idle case) and for the few transactions' changes a batch
// gathers under moderate load. The compute runs under the keys' locks with a
// fresh snapshot, so nothing can have moved; the budget bounds how long a
// Cache.get miss can wait for those locks. Whatever the normal path would
// record rather than write (a compute with no row or with several,
// kck.expect_one_row, SQLSTATE KCK02; a failing or slow compute; an augment
// that fails or gives no value, a fallback) fails the transaction instead:
// it rolls back, the claim stays held, and the batch runs the normal way
// (listener/executor.h), which records it.
#include <spdlog/spdlog.h>

#include "listener/executor.h"
#include "listener/fault.h"
#include "listener/json_text.h"
#include "listener/metrics.h"
#include "pg/connection.h"
#include "primers/augment_chain.h"
#include "primers/key_codec.h"
#include "sql/embedded.h"

namespace kck {
namespace {

using Statements = std::vector<AsyncConnection::Statement>;

std::optional<std::string> SecondsText(const std::optional<std::chrono::seconds>& s) {
  if (!s) return std::nullopt;
  return std::to_string(s->count());
}

// One key's Primer::compute_write with its parameters, writing the product
// stored under `stored_as` (the key itself, but for a rehearsal).
StatusOr<AsyncConnection::Statement> ComputeWrite(const std::string& key, const Primer& primer,
                                                  const std::string& stored_as) {
  auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!values.ok()) return values.status();
  pg::Params params = BindValues(primer.compute, primer.KeyValues(*values));
  params.emplace_back(stored_as);
  params.push_back(SecondsText(primer.spec.soft_expire));
  params.push_back(SecondsText(primer.spec.hard_expire));
  return AsyncConnection::Statement(primer.compute_write, std::move(params));
}

// One key's augment by its one change (AugmentWrite).
StatusOr<AsyncConnection::Statement> AugmentWriteOf(const std::string& key, const KeyWork& work, const Change& c) {
  const Primer& primer = *work.primer;
  auto values = DecodeKey(key, primer.spec.name, primer.spec.params);
  if (!values.ok()) return values.status();
  auto change = RowChange(c);
  if (!change) return Status::Invalid("not one row pair");
  auto statement = AugmentWrite(primer, primer.KeyValues(*values), *change, c.txid, key,
                                SecondsText(primer.spec.soft_expire), SecondsText(primer.spec.hard_expire));
  if (!statement.ok()) return statement.status();
  return AsyncConnection::Statement(std::move(statement->sql), std::move(statement->params));
}

// The batch's statements from BEGIN to COMMIT, and the index of the first
// key's; nullopt when a key cannot be bound (the normal path reports it).
std::optional<size_t> FastStatements(const Plan& plan, int64_t claim, std::optional<int64_t> generation,
                                     const std::vector<Change>& changes, Statements* out) {
  std::vector<std::string> keys;
  bool augments = false;
  for (const auto& [key, work] : plan.keys) {
    keys.push_back(key);
    augments |= work.augmentable;
  }
  out->emplace_back("BEGIN", pg::Params{});
  // The consumption before the locks: a miss waits only for the writes.
  out->emplace_back(sql::File("daemon_consume.sql"), pg::Params{std::to_string(claim)});
  out->emplace_back(sql::File("daemon_lock_keys.sql"), pg::Params{pg::ArrayLiteral(keys)});
  for (auto& check : GenerationCheck(generation)) out->push_back(std::move(check));
  out->emplace_back(sql::File("daemon_fast_timeout.sql"), pg::Params{std::to_string(kFastTimeoutMs)});
  if (augments) {
    out->emplace_back(sql::File("daemon_fast_older.sql"), pg::Params{std::to_string(changes.front().id)});
  }
  const size_t first = out->size();
  for (const auto& [key, work] : plan.keys) {
    auto statement = work.augmentable ? AugmentWriteOf(key, work, changes[work.changes.front()])
                                      : ComputeWrite(key, *work.primer, key);
    if (!statement.ok()) return std::nullopt;
    out->push_back(std::move(*statement));
  }
  out->emplace_back("COMMIT", pg::Params{});
  return first;
}

// Why a fast write rolled back, for its debug line. sql/daemon_fast_older.sql
// fails through kck.expect_one_row, whose message speaks of a compute.
std::string RollbackReason(const Status& s) {
  if (s.message().find("(older changes are in the outbox)") != std::string::npos) {
    return "changes older than the batch's first are still in the outbox (the usual way augments in order)";
  }
  return pg::Excerpt(s.message(), 300);
}

}  // namespace

bool Executor::FastEligible(const Batch& batch) const {
  // Larger batches cost less per change the usual way: one statement
  // computes many keys of a primer, and no lock is held meanwhile.
  const Plan& plan = batch.plan;
  if (!fast_in_sql_ || plan.keys.empty() || plan.keys.size() > kFastKeys || !plan.partial.empty()) return false;
  double budget = kFastBudgetMs;
  for (const auto& [key, work] : plan.keys) {
    const Primer& primer = *work.primer;
    if (work.force || primer.spec.engine != "sql" || primer.compute_write.empty()) return false;
    // An augment of one change goes in too; several are chained the normal way.
    if (work.augmentable && work.changes.size() != 1) return false;
    // Timed by the primer's last recompute, or last augment for an augment.
    auto last = work.augmentable ? timings_.augment_ms(primer.spec.name) : timings_.compute_ms(primer.spec.name);
    if (!last) return false;
    if (!fault::AnyComputeIsCheap()) budget -= *last;
    if (budget < 0) return false;
  }
  return true;
}

Task<StatusOr<bool>> Executor::FastWrite(Batch& batch) {
  ++progress_;
  Statements all;
  const std::optional<size_t> first = FastStatements(batch.plan, batch.claim, GenerationToCheck(), batch.changes, &all);
  if (!first) co_return false;
  // The steps the normal path passes, so that tests can cut or pause here too.
  co_await fault::At("compute", main_);
  co_await fault::At("lock", main_);
  co_await fault::At("write", main_);
  co_await fault::At("commit", main_);
  auto done = co_await main_.Pipeline(std::move(all));
  if (!done.ok()) {
    if (!main_.connected()) co_return done.status().WithContext("computing and writing in one transaction");
    if (done.status().sqlstate() == kPrimersChanged) co_return done.status();  // the caller rolls back
    if (done.status().sqlstate() == kUndefinedFunction) {
      fast_in_sql_ = false;
      spdlog::warn("kck.expect_one_row is missing (schema older than version 12: run kck install); "
                   "computing every batch outside its write transaction until the primers reload");
    }
    spdlog::debug("fast write rolled back, computing the batch the usual way: {}", RollbackReason(done.status()));
    auto back = co_await main_.Script("ROLLBACK");
    if (!back.ok()) co_return back.status();
    co_return false;
  }
  TallyFast(*done, *first, batch);
  co_return true;
}

void Executor::TallyFast(const std::vector<pg::Result>& results, size_t first, Batch& batch) {
  batch.stats.changes = batch.changes.size();
  batch.stats.fast = true;
  size_t i = first;
  for (const auto& [key, work] : batch.plan.keys) {
    const pg::Result& r = results[i++];
    transient_tries_.erase(key);
    if (r.rows() != 1 || r.get(0, 0) == "0") continue;  // not stored: primed lazily on read
    if (r.get(0, 1) == "0") {  // an augment whose change the last compute saw
      ++batch.stats.fresh;
      continue;
    }
    const double ms = ParsedNumber<double>(r.get(0, 3));
    if (work.augmentable) {
      timings_.Augmented(work.primer->spec.name, ms, 1);
    } else {
      timings_.Computed(work.primer->spec.name, ms);
    }
    if (metrics_) metrics_->AddCompute(work.primer->spec.name, work.augmentable, ms / 1000);
    if (r.get(0, 2) == "t") {
      ++batch.stats.unchanged;
    } else {
      ++batch.stats.keys;
      batch.stats.augmented += work.augmentable;
    }
  }
}

// The timings the daemons before this one published, for primers still
// defined as they were then (sql/daemon_primer_timings.sql).
Task<Status> Executor::RestoreTimings() {
  co_await fault::At("read_timings", main_);
  auto published = co_await main_.Query(sql::File("daemon_primer_timings.sql"));
  if (!published.ok()) {
    if (!main_.connected()) co_return published.status().WithContext("reading the primers' published timings");
    spdlog::debug("reading the primers' published timings: {}", pg::Excerpt(published.status().message(), 300));
    co_return Status::Ok();
  }
  for (int i = 0; i < published->rows(); ++i) {
    const std::string primer(published->get(i, 0));
    auto timings = nlohmann::json::parse(published->get(i, 1), nullptr, false);
    if (registry_->Find(primer) != nullptr && !timings_.Restore(primer, timings)) {
      spdlog::debug("primer \"{}\": its published timings are not in a form this daemon reads: {}", primer,
                    pg::Excerpt(published->get(i, 1), 200));
    }
  }
  co_return Status::Ok();
}

// A daemon that starts (or reloads its primers) knows no primer's compute
// time, and its batch connection has planned nothing: its first batches
// would take the normal path's four round trips, then plan each primer's
// statement afresh five times (PostgreSQL plans a prepared statement with
// the values of each of its first five runs before it settles on one plan:
// here 4 ms for author_stats' first run, 0.5-1 ms for the next four, 0.2 ms
// after). So it begins with what the daemons before it timed
// (listener/primer_timings.h) and, for primers they did not time, each
// primer's compute time as its stored products last measured it, and runs
// each cheap SQL primer's statement kRehearsals times with a stored key's
// parameters but written under a key nothing is stored under (''): planned
// with real values, computed and written nowhere. Best effort: a statement that fails here is left to the
// batches, which report it; only a lost connection fails the load.
Task<Status> Executor::Rehearse() {
  Status restored = co_await RestoreTimings();
  if (!restored.ok()) co_return restored;
  auto costs = co_await main_.Query(sql::File("daemon_compute_costs.sql"));
  if (!costs.ok()) {
    if (!main_.connected()) co_return costs.status().WithContext("reading the primers' compute times");
    spdlog::debug("reading the primers' compute times: {}", pg::Excerpt(costs.status().message(), 300));
    co_return Status::Ok();
  }
  Statements all;
  for (int i = 0; i < costs->rows(); ++i) {
    const Primer* primer = registry_->Find(costs->get(i, 0));
    if (primer == nullptr || primer->spec.engine != "sql" || primer->compute_write.empty()) continue;
    // A stored product's compute_ms may be its last augment's; an augment
    // costs at most about a recompute, and a slow one rolls back (50 ms).
    timings_.SeedFromStored(primer->spec.name, ParsedNumber<double>(costs->get(i, 1)), !primer->augment.empty());
    if (timings_.compute_ms(primer->spec.name).value_or(0) > kFastBudgetMs) continue;
    auto statement = ComputeWrite(std::string(costs->get(i, 2)), *primer, "");
    if (!statement.ok()) continue;
    for (int run = 0; run < kRehearsals; ++run) all.push_back(*statement);
  }
  if (all.empty()) co_return Status::Ok();
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = all.size() / kRehearsals;
  co_await fault::At("plan_ahead", main_);
  auto done = co_await main_.PipelineEach(std::move(all));
  if (!done.ok() && !main_.connected()) co_return done.status().WithContext("planning the primers' statements ahead");
  const double took = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  spdlog::debug("primers planned ahead: {} ({:.1f} ms){}", n, took,
                done.ok() ? "" : ": " + pg::Excerpt(done.status().message(), 300));
  co_return Status::Ok();
}

}  // namespace kck
