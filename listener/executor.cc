#include "listener/executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "listener/fault.h"
#include "listener/intake.h"
#include "listener/json_text.h"
#include "listener/resolver.h"
#include "pg/connection.h"
#include "sql/embedded.h"

namespace kck {

bool VisibleInSnapshot(std::string_view snapshot, uint64_t txid) {
  auto number = ParsedNumber<uint64_t>;
  size_t c1 = snapshot.find(':');
  size_t c2 = snapshot.find(':', c1 + 1);
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return false;
  uint64_t xmin = number(snapshot.substr(0, c1));
  uint64_t xmax = number(snapshot.substr(c1 + 1, c2 - c1 - 1));
  if (txid < xmin) return true;
  if (txid >= xmax) return false;
  std::string_view xip = snapshot.substr(c2 + 1);
  while (!xip.empty()) {
    size_t comma = xip.find(',');
    if (number(xip.substr(0, comma)) == txid) return false;
    if (comma == std::string_view::npos) break;
    xip.remove_prefix(comma + 1);
  }
  return true;
}

namespace {

using Statements = std::vector<AsyncConnection::Statement>;

void LogProblems(const std::vector<std::string>& problems) {
  constexpr size_t kShown = 20;
  for (size_t i = 0; i < std::min(problems.size(), kShown); ++i) {
    spdlog::warn("{}: skipped", pg::Excerpt(problems[i], 500));
  }
  if (problems.size() > kShown) spdlog::warn("and {} more changes skipped in this batch", problems.size() - kShown);
}

}  // namespace

// Changes that recompute every product of their table: a degraded capture
// (a warning) or a bulk statement past kck.bulk_max_images (for the
// operator who sees the recompute); one line per table per minute each.
void Executor::LogWholeTableChanges(const Plan& plan) {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& d : plan.degraded) {
    if (!degraded_warnings_.Allow(d.table, now)) continue;
    spdlog::warn("table \"{}\": capture degraded: {}; recomputing every product that depends on it (see kck status)",
                 d.table, pg::Excerpt(d.error, 300));
  }
  for (const auto& w : plan.whole_table) {
    if (!whole_table_notes_.Allow(w.table, now)) continue;
    spdlog::info("table \"{}\": a bulk statement had {}; recomputing every product that depends on it "
                 "(setting kck.bulk_max_images)",
                 w.table, pg::Excerpt(w.why, 200));
  }
  for (const auto& r : plan.recaptured) {
    spdlog::info("table \"{}\": kck install {} its capture while products were stored, and writes before it were "
                 "not captured; recomputing every product that depends on it",
                 r.table, pg::Excerpt(r.why, 20));
  }
}

Executor::Executor(AsyncConnection& main, AsyncConnection& compute, WorkerPool* worker, int batch_size)
    : main_(main), compute_(compute), worker_(worker), sql_(compute), python_(worker), import_(main.loop()), batch_size_(batch_size) {}

Engine& Executor::EngineFor(const Primer& primer) {
  if (primer.python()) return python_;
  if (IsImportKind(primer.spec.engine)) return import_;
  return sql_;
}

Task<void> Executor::Abandon(int64_t claim) {
  if (!main_.connected()) co_return;
  // Outside a transaction ROLLBACK only warns.
  (void)co_await main_.Script("ROLLBACK");
  co_await Release(main_, claim);
}

Task<Status> Executor::LoadRegistry() {
  // The generation first: primers written after it are reloaded again on
  // the next batch, never missed.
  Statements load;
  load.emplace_back(sql::File("daemon_generation.sql"), pg::Params{});
  load.emplace_back(kRegistrySql, pg::Params{});
  load.emplace_back(sql::File("daemon_schema_version.sql"), pg::Params{});
  auto rows = co_await main_.Pipeline(std::move(load));
  if (!rows.ok()) co_return rows.status().WithContext("loading primers (did kck install run?)");
  auto registry = Registry::FromRows((*rows)[1]);
  if (!registry.ok()) co_return registry.status();
  registry_ = *registry;
  check_in_sql_ = fast_in_sql_ = true;  // kck install may have migrated the schema meanwhile
  generation_in_sql_ = (*rows)[2].rows() == 1 && ParsedNumber<int>((*rows)[2].get(0, 0)) >= 19;
  const int64_t generation = (*rows)[0].rows() == 1 ? ParsedNumber<int64_t>((*rows)[0].get(0, 0)) : 0;
  // New primers' SQL makes what was timed moot; the same primers loaded
  // again (a lost connection) keep it, and what was not published yet.
  if (generation != generation_) timings_.Clear();
  generation_ = generation;
  co_return co_await Rehearse();
}

Task<StatusOr<BatchStats>> Executor::RunBatch() {
  ++progress_;
  auto claimed = co_await Claim(main_, batch_size_);
  if (!claimed.ok()) co_return claimed.status();
  if (claimed->generation != generation_) {
    co_await Release(main_, claimed->claim);
    BatchStats stats;
    stats.registry_moved = true;
    co_return stats;
  }
  if (claimed->changes.empty()) co_return BatchStats{};
  Batch batch;
  batch.claim = claimed->claim;
  batch.changes = std::move(claimed->changes);
  batch.plan = PlanChanges(batch.changes, *registry_);
  LogProblems(batch.plan.problems);
  LogWholeTableChanges(batch.plan);
  Status resolved = co_await Resolve(batch.plan, main_, compute_, worker_);
  if (!resolved.ok()) {
    co_await Abandon(batch.claim);
    co_return resolved;
  }
  RecomputeWhereCheaper(batch.plan);
  if (FastEligible(batch)) {
    auto fast = co_await FastWrite(batch);
    if (!fast.ok()) {
      co_await Abandon(batch.claim);
      co_return RegistryMovedOr(fast.status());
    }
    if (*fast) co_return batch.stats;
  }
  co_return RegistryMovedOr(co_await Apply(batch));
}

std::optional<int64_t> Executor::GenerationToCheck() const {
  return generation_in_sql_ ? std::optional<int64_t>(generation_) : std::nullopt;
}

StatusOr<BatchStats> Executor::RegistryMovedOr(StatusOr<BatchStats> stats) {
  if (stats.ok() || stats.status().sqlstate() != kPrimersChanged) return stats;
  spdlog::debug("batch rolled back: {}", pg::Excerpt(stats.status().message(), 300));
  BatchStats moved;
  moved.registry_moved = true;
  return moved;
}

Task<StatusOr<BatchStats>> Executor::RunScheduled() {
  Batch batch;
  for (const auto& p : registry_->primers()) {
    if (!p->spec.refresh_every) continue;
    pg::Params params = {p->spec.name, std::to_string(p->spec.refresh_every->count()), std::to_string(batch_size_)};
    auto due = co_await main_.Query(sql::File("daemon_due.sql"), std::move(params));
    if (!due.ok()) co_return due.status().WithContext("finding products due for refresh");
    for (int i = 0; i < due->rows(); ++i) batch.plan.AddKey(std::string(due->get(i, 0)), p.get(), 0, false, true);
  }
  co_return RegistryMovedOr(co_await Apply(batch));
}

Task<Status> Executor::ReadStored(const Batch& batch, bool lock, bool begin, std::map<std::string, Stored>* out) {
  std::vector<std::string> keys, augmentable;
  for (const auto& [k, w] : batch.plan.keys) {
    keys.push_back(k);
    if (w.augmentable && !lock) augmentable.push_back(k);
  }
  // With the lock, the read runs after it is granted (the server takes the
  // pipelined statements in order), so it sees every product stored before.
  const std::string key_array = pg::ArrayLiteral(keys);
  Statements read;
  if (begin) read.emplace_back("BEGIN", pg::Params{});
  if (lock) read.emplace_back(sql::File("daemon_lock_keys.sql"), pg::Params{key_array});
  read.emplace_back(sql::File("daemon_read_products.sql"), pg::Params{key_array, pg::ArrayLiteral(augmentable)});
  auto done = co_await main_.Pipeline(std::move(read));
  if (!done.ok()) co_return done.status().WithContext(lock ? "locking and reading products" : "reading products");
  const pg::Result& rows = done->back();
  out->clear();
  for (int i = 0; i < rows.rows(); ++i) {
    (*out)[std::string(rows.get(i, 0))] = {std::string(rows.get(i, 1)), std::string(rows.get(i, 2)),
                                           std::string(rows.get(i, 3))};
  }
  co_return Status::Ok();
}

Task<Status> Executor::ComputeAll(Batch& batch) {
  Status s = co_await ReadStored(batch, false, false, &batch.stored);
  if (s.ok()) s = co_await CheckAugmentOrder(batch);
  if (!s.ok()) co_return s;
  co_await fault::At("compute", compute_);
  co_await ComputeAhead(batch);
  for (auto it = batch.plan.keys.begin(); s.ok() && it != batch.plan.keys.end(); ++it) {
    if (batch.wait_keys.count(it->first)) continue;  // after the older claims (listener/augment_order.cc)
    s = co_await ProduceKey(it->first, it->second, batch);
  }
  if (s.ok()) s = co_await ProduceAfterOlderClaims(batch);
  co_return s;
}

// Drops what the batch computed for `keys`.
void Executor::Forget(const std::set<std::string>& keys, Batch& batch) {
  auto listed = [&](const std::string& k) { return keys.count(k) > 0; };
  std::erase_if(batch.writes.products, [&](const ProductWrite& p) { return listed(p.key); });
  std::erase_if(batch.writes.deletes, listed);
  std::erase_if(batch.writes.errors, [&](const ErrorWrite& e) { return listed(e.key); });
  for (const auto& k : keys) {
    batch.outcomes.erase(k);
    batch.precomputed.erase(k);
    batch.preaugmented.erase(k);
  }
}

Task<Status> Executor::Begin() {
  auto begun = co_await main_.Script("BEGIN");
  co_return begun.ok() ? Status::Ok() : begun.status();
}

// Opens the write transaction: its BEGIN goes with the first statement.
// Apply calls it with keys or partial matches planned.
Task<Status> Executor::Settle(Batch& batch) {
  ++progress_;
  co_await fault::At("lock", main_);
  std::set<std::string> before;
  for (const auto& [k, w] : batch.plan.keys) before.insert(k);
  const bool partial = !batch.plan.partial.empty();
  Status s = Status::Ok();
  if (partial) s = co_await Begin();
  if (s.ok()) s = co_await ListPartialMatches(batch.plan, main_, true);
  if (!s.ok()) co_return s;
  if (batch.plan.keys.empty()) co_return Status::Ok();  // begun: there were partial matches
  std::map<std::string, Stored> now;
  s = co_await ReadStored(batch, true, !partial, &now);
  if (!s.ok()) co_return s;
  // New in the plan, stored or removed since the first read, or written.
  auto moved_since = [&](const std::string& k) {
    if (!before.count(k)) return true;
    auto was = batch.stored.find(k);
    auto is = now.find(k);
    if (was == batch.stored.end() || is == now.end()) return (was == batch.stored.end()) != (is == now.end());
    return is->second.xmin != was->second.xmin;
  };
  std::set<std::string> moved;
  for (const auto& [k, w] : batch.plan.keys) {
    if (moved_since(k)) moved.insert(k);
  }
  if (moved.empty()) co_return Status::Ok();
  spdlog::debug("{} products were stored, written or removed while the batch computed; computing them again",
                moved.size());
  Forget(moved, batch);
  for (const auto& k : moved) {
    batch.stored.erase(k);
    if (auto is = now.find(k); is != now.end()) batch.stored[k] = is->second;
    KeyWork work = batch.plan.keys.at(k);
    work.augmentable = false;  // the value it would start from moved
    s = co_await ProduceKey(k, work, batch);
    if (!s.ok()) co_return s;
  }
  co_return Status::Ok();
}

void Executor::Tally(Batch& batch) {
  for (const auto& [k, o] : batch.outcomes) {
    if (o == Outcome::kWritten || o == Outcome::kAugmented) ++batch.stats.keys;
    if (o == Outcome::kAugmented) ++batch.stats.augmented;
    if (o == Outcome::kRemoved) ++batch.stats.removed;
    if (o == Outcome::kError) ++batch.stats.errors;
    if (o == Outcome::kFresh) ++batch.stats.fresh;
  }
}

// The opening of the checked write transaction: BEGIN, the claim's
// consumption, then the keys' locks and the check that none moved since the
// batch read them. The locks come last: a reader that misses one of the
// keys waits for the writes, not for the deletion of the batch's changes
// (4 ms of 8 for 5000 changes).
std::vector<AsyncConnection::Statement> Executor::CheckedOpening(const Batch& batch) const {
  Statements opening;
  opening.emplace_back("BEGIN", pg::Params{});
  if (batch.claim != 0) opening.emplace_back(sql::File("daemon_consume.sql"), pg::Params{std::to_string(batch.claim)});
  if (batch.plan.keys.empty()) return opening;
  std::vector<std::string> keys, xmins;
  for (const auto& [k, w] : batch.plan.keys) {
    keys.push_back(k);
    auto it = batch.stored.find(k);
    xmins.push_back(it == batch.stored.end() ? "" : it->second.xmin);
  }
  const std::string key_array = pg::ArrayLiteral(keys);
  opening.emplace_back(sql::File("daemon_lock_keys.sql"), pg::Params{key_array});
  opening.emplace_back(sql::File("daemon_expect_products.sql"), pg::Params{key_array, pg::ArrayLiteral(xmins)});
  return opening;
}

Task<Status> Executor::WriteChecked(Batch& batch, WriteCounts* counts, bool* written) {
  ++progress_;
  co_await fault::At("lock", main_);
  const BatchStats before = batch.stats;
  Tally(batch);
  Status s = co_await WriteAndCommit(main_, 0, GenerationToCheck(), batch.writes, counts,
                                     CheckedOpening(batch));  // it consumes
  *written = s.ok();
  if (s.ok()) co_return s;
  const bool no_check = s.sqlstate() == kUndefinedFunction;
  if (s.sqlstate() != kProductsMoved && !no_check) co_return s.WithContext("writing products");
  batch.stats = before;
  if (no_check) {
    check_in_sql_ = false;
    spdlog::warn("kck.expect_products is missing (schema older than version 10: run kck install); "
                 "writing each batch in two round trips until the primers reload");
  }
  auto back = co_await main_.Script("ROLLBACK");
  co_return back.ok() ? Status::Ok() : back.status();
}

Task<Status> Executor::SettleAndWrite(Batch& batch, WriteCounts* counts) {
  Status s = Status::Ok();
  if (!batch.plan.keys.empty() || !batch.plan.partial.empty()) {
    s = co_await Settle(batch);
  } else {
    s = co_await Begin();
  }
  if (!s.ok()) co_return s.WithContext("computing products");
  Tally(batch);
  s = co_await WriteAndCommit(main_, batch.claim, GenerationToCheck(), batch.writes, counts);
  co_return s.ok() ? s : s.WithContext("writing products");
}

// Computes with no transaction open; then one short transaction locks the
// keys, checks them (or computes again what moved meanwhile), writes,
// consumes the claim and commits.
Task<StatusOr<BatchStats>> Executor::Apply(Batch& batch) {
  batch.stats.changes = batch.changes.size();
  Status s = Status::Ok();
  if (!batch.plan.keys.empty()) s = co_await ComputeAll(batch);
  if (!s.ok()) {
    co_await Abandon(batch.claim);
    co_return s.WithContext("computing products");
  }
  WriteCounts counts;
  bool written = false;
  if (batch.plan.partial.empty() && check_in_sql_) s = co_await WriteChecked(batch, &counts, &written);
  if (s.ok() && !written) s = co_await SettleAndWrite(batch, &counts);
  if (!s.ok()) {
    co_await Abandon(batch.claim);
    co_return s;
  }
  batch.stats.keys -= counts.rejected + counts.unchanged;
  batch.stats.errors += counts.rejected;
  batch.stats.unchanged = counts.unchanged;
  co_return batch.stats;
}

}  // namespace kck
