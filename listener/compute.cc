// How the executor produces the value of one product: augment the stored
// value change by change, or recompute it (the batch's SQL recomputes in one
// round trip, else one by one), each through the engine of the primer's kind
// (primers/engine.h), and what a failure means: transient ones roll the batch back,
// the primer's own become the product's error, and failed augments fall
// back to a recompute and are counted per primer.
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

#include "listener/executor.h"
#include "listener/json_text.h"
#include "listener/metrics.h"
#include "pg/connection.h"

namespace kck {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::optional<double> Seconds(const std::optional<std::chrono::seconds>& s) {
  if (!s) return std::nullopt;
  return static_cast<double>(s->count());
}

// One warning per primer and minute, however many augments fail.
void WarnFallback(const std::string& primer, const std::string& key, const std::string& reason) {
  static std::map<std::string, Clock::time_point> last;
  auto now = Clock::now();
  auto it = last.find(primer);
  if (it != last.end() && now - it->second < std::chrono::minutes(1)) return;
  last[primer] = now;
  spdlog::warn("primer \"{}\": augment of key \"{}\" failed, recomputing instead (counted in kck status): {}", primer,
               pg::Excerpt(key, 120), pg::Excerpt(reason, 500));
}

}  // namespace

bool Executor::GivesUp(const std::string& key, const Status& failure) {
  const bool timeout = failure.sqlstate() == pg::kQueryCanceled;
  const int limit = timeout ? kMaxTimeoutTries : kMaxTransientTries;
  if (transient_tries_.size() > 10000) transient_tries_.clear();
  int tries = ++transient_tries_[key];
  if (tries < limit) {
    spdlog::warn("key \"{}\": compute failed transiently (try {} of {}), rolling the batch back: {}",
                 pg::Excerpt(key, 120), tries, limit, pg::Excerpt(failure.message(), 300));
    return false;
  }
  transient_tries_.erase(key);
  return true;
}

// The keys of SQL primers that will be recomputed, and those augmented by
// one change, computed ahead in one round trip (SqlEngine::ComputeAhead);
// ProduceKey takes their values. A key that waits for older claims
// (listener/augment_order.cc) is augmented after them, from what they wrote.
Task<void> Executor::ComputeAhead(Batch& batch) {
  SqlEngine::KeysByPrimer recompute;
  std::vector<SqlEngine::OneAugment> augments;
  for (const auto& [key, work] : batch.plan.keys) {
    if (&EngineFor(*work.primer) != &sql_) continue;
    const Route route = RouteFor(key, work, batch);
    if (route == Route::kRecompute) recompute[work.primer].push_back(key);
    if (route != Route::kAugment || batch.wait_keys.count(key)) continue;
    const Stored& stored = batch.stored.at(key);
    auto changes = AugmentChanges(work, stored, batch);
    if (changes && changes->size() == 1) augments.push_back({work.primer, key, changes->front(), stored.value});
  }
  co_await sql_.ComputeAhead(recompute, augments, &batch.precomputed, &batch.preaugmented);
}

std::optional<ChangeImage> RowChange(const Change& c) {
  bool bulk = false;
  auto pairs = RowPairs(c, &bulk);
  if (!pairs.ok() || bulk || pairs->size() != 1) return std::nullopt;
  return ChangeImage{c.tbl, c.op, pairs->front().old_row, pairs->front().new_row};
}

std::optional<std::vector<ChangeImage>> Executor::AugmentChanges(const KeyWork& work, const Stored& stored,
                                                                 const Batch& batch) {
  std::vector<ChangeImage> changes;
  for (size_t idx : work.changes) {
    const Change& c = batch.changes[idx];
    if (!stored.snapshot.empty() && VisibleInSnapshot(stored.snapshot, ParsedNumber<uint64_t>(c.txid))) continue;
    auto change = RowChange(c);
    if (!change) return std::nullopt;
    changes.push_back(std::move(*change));
  }
  return changes;
}

// The stored value with the key's changes applied in id order; nullopt
// when a recompute must do instead (declined, failed: counted).
Task<StatusOr<std::optional<std::string>>> Executor::Augment(const std::string& key, const KeyWork& work,
                                                             const Stored& stored, Batch& batch) {
  using Result = std::optional<std::string>;
  auto changes = AugmentChanges(work, stored, batch);
  if (!changes) co_return Result();
  if (changes->empty()) co_return Result(stored.value);
  auto next = co_await EngineFor(*work.primer).AugmentAll(*work.primer, key, std::move(*changes), stored.value);
  if (!next.ok() && next.status().transient()) co_return next.status();
  if (!next.ok()) {
    FallbackCount& f = batch.writes.fallbacks[work.primer->spec.name];
    ++f.count;
    f.last = next.status().message();
    ++batch.stats.augment_fallbacks;
    WarnFallback(work.primer->spec.name, key, f.last);
    co_return Result();
  }
  co_return next;
}

Task<StatusOr<std::optional<Computed>>> Executor::Augmented(const std::string& key, const KeyWork& work,
                                                           const Stored& stored, Batch& batch) {
  using Result = std::optional<Computed>;
  auto pre = batch.preaugmented.find(key);
  if (pre != batch.preaugmented.end()) co_return Result(std::move(pre->second));
  auto t0 = Clock::now();
  auto a = co_await Augment(key, work, stored, batch);
  if (!a.ok()) co_return a.status();
  if (!a->has_value()) co_return Result();
  co_return Result(Computed{std::move(**a), std::nullopt, MsSince(t0), false});
}

void Executor::RecordError(const std::string& key, const Primer& primer, const Status& failure, bool stored,
                           Batch& batch) {
  std::string error = failure.transient() ? "gave up after repeated transient failures: " + failure.message()
                                          : failure.message();
  batch.outcomes[key] = Outcome::kError;
  if (metrics_) metrics_->AddError(primer.spec.name);
  spdlog::error("primer \"{}\": key \"{}\": compute failed, keeping the stored value: {}", primer.spec.name,
                pg::Excerpt(key, 120), pg::Excerpt(error, 500));
  if (stored) batch.writes.errors.push_back({key, error});
}

// The compute that stored the product read a snapshot in which every one of
// these changes had committed, so its value shows them: a backlog drained
// in several batches recomputes a key once, not once per batch. An augment
// keeps the snapshot of the compute before it and applies only changes that
// snapshot does not show, so a change it applied is never taken for seen.
// A refresh request always computes.
bool Executor::AlreadyFresh(const KeyWork& work, const Stored& stored, const Batch& batch) {
  if (work.force || stored.snapshot.empty() || work.changes.empty()) return false;
  for (size_t idx : work.changes) {
    if (!VisibleInSnapshot(stored.snapshot, ParsedNumber<uint64_t>(batch.changes[idx].txid))) return false;
  }
  return true;
}

Executor::Route Executor::RouteFor(const std::string& key, const KeyWork& work, const Batch& batch) {
  auto it = batch.stored.find(key);
  if (it == batch.stored.end()) return work.force ? Route::kRecompute : Route::kNone;
  if (AlreadyFresh(work, it->second, batch)) return Route::kFresh;
  if (work.augmentable && batch.MayAugment(key, work.primer) && !it->second.value.empty()) return Route::kAugment;
  return Route::kRecompute;
}

// A key with several changes is augmented change by change in one chained
// statement (primers/augment_chain.h). When that would take longer than its
// last recompute, the key is recomputed instead: a backlog of many changes
// to a cheap product then costs one compute per key, as without augments.
// A chain's time is told from the primer's shortest and longest timed
// chains (EstimatedChainMs): until two lengths are timed, by this daemon or
// by those before it (listener/primer_timings.h), keys are augmented.
void Executor::RecomputeWhereCheaper(Plan& plan) const {
  for (auto& [key, work] : plan.keys) {
    if (!work.augmentable || work.changes.size() < 2) continue;
    const std::string& primer = work.primer->spec.name;
    auto chain = timings_.ChainMs(primer, work.changes.size());
    auto compute = timings_.compute_ms(primer);
    if (chain && compute && *chain > *compute) work.augmentable = false;
  }
}

Task<Status> Executor::ProduceKey(const std::string& key, const KeyWork& work, Batch& batch) {
  ++progress_;
  const Primer& primer = *work.primer;
  auto it = batch.stored.find(key);
  const bool stored = it != batch.stored.end();
  const Route route = RouteFor(key, work, batch);
  if (route == Route::kNone) co_return Status::Ok();  // not stored: primed lazily on read
  if (route == Route::kFresh) {
    batch.outcomes[key] = Outcome::kFresh;
    co_return Status::Ok();
  }
  auto t0 = Clock::now();
  Computed c;
  bool augmented = false;
  if (route == Route::kAugment) {
    auto a = co_await Augmented(key, work, it->second, batch);
    if (!a.ok()) co_return a.status();
    augmented = a->has_value();
    if (augmented) c = std::move(**a);  // no snapshot: it stays the last compute's
  }
  auto pre = batch.precomputed.find(key);
  if (!augmented && pre != batch.precomputed.end()) {
    c = pre->second;
  } else if (!augmented) {
    auto r = co_await EngineFor(primer).Compute(primer, key);
    if (!r.ok() && r.status().transient() && !GivesUp(key, r.status())) co_return r.status();
    if (!r.ok()) {
      RecordError(key, primer, r.status(), stored, batch);
      co_return Status::Ok();
    }
    c = std::move(*r);
    c.ms = MsSince(t0);
  }
  if (augmented) {
    timings_.Augmented(primer.spec.name, c.ms, work.changes.size());
  } else {
    timings_.Computed(primer.spec.name, c.ms);
  }
  transient_tries_.erase(key);
  if (metrics_) metrics_->AddCompute(primer.spec.name, augmented, c.ms / 1000);
  if (c.gone) {
    if (stored) batch.writes.deletes.push_back(key);
    batch.outcomes[key] = Outcome::kRemoved;
    co_return Status::Ok();
  }
  batch.outcomes[key] = augmented ? Outcome::kAugmented : Outcome::kWritten;
  batch.writes.products.push_back({key, primer.spec.name, c.value.value_or("null"), c.snapshot, c.ms,
                                   Seconds(primer.spec.soft_expire), Seconds(primer.spec.hard_expire)});
  co_return Status::Ok();
}

}  // namespace kck
