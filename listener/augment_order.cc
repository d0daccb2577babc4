// The order augments apply in. An augment applies each key's changes in id
// order, on top of the stored value. A change older than the batch's first
// that is still in the outbox is applied after this batch's, so the keys it
// maps to must not be augmented now:
//
//   - when a claim made before this batch's holds it (another daemon is
//     computing it), the keys wait: the batch produces every other key
//     first, then waits for that claim to be written (or released, at most
//     kMaxClaimWait), reads those keys again and augments them from the
//     value the other batch wrote. Claims are numbered in the order they
//     were made and a batch waits only for lower numbers, so no two wait
//     for each other;
//   - otherwise (it committed after the claim, or a later claim took it)
//     the keys are recomputed.
//
// With several daemons, keys augment as they would with one.
#include "listener/executor.h"

#include <spdlog/spdlog.h>

#include "listener/intake.h"
#include "sql/embedded.h"

namespace kck {
namespace {

// Keys a plan of older changes reaches: listed ones and, for partial
// matches and keys queries, every key of their primer.
void Hold(const Plan& plan, std::set<std::string>* keys, std::set<const Primer*>* primers) {
  for (const auto& [key, work] : plan.keys) keys->insert(key);
  for (const auto& m : plan.partial) primers->insert(m.primer);
  for (const auto& q : plan.keys_queries) primers->insert(q.primer);
}

}  // namespace

Task<Status> Executor::CheckAugmentOrder(Batch& batch) {
  batch.augment_held.clear();
  batch.augment_held_primers.clear();
  batch.augment_held_all = true;
  batch.wait_keys.clear();
  batch.wait_claims.clear();
  bool any_augment = false;
  for (const auto& [k, w] : batch.plan.keys) any_augment |= w.augmentable && batch.stored.count(k);
  if (!any_augment || batch.changes.empty()) co_return Status::Ok();
  auto older = co_await OlderChanges(main_, batch.changes.front().id, kOlderPlanned + 1);
  if (!older.ok()) co_return older.status();
  if (older->changes.size() > kOlderPlanned) co_return Status::Ok();
  std::vector<Change> in_earlier_claims, other;
  std::set<int64_t> claims;
  for (size_t i = 0; i < older->changes.size(); ++i) {
    const int64_t claim = older->claims[i];
    const bool earlier = claim != 0 && batch.claim != 0 && claim < batch.claim;
    (earlier ? in_earlier_claims : other).push_back(std::move(older->changes[i]));
    if (earlier) claims.insert(claim);
  }
  const Plan held = PlanChanges(other, *registry_);
  const Plan waited = PlanChanges(in_earlier_claims, *registry_);
  if (!held.degraded.empty() || !waited.degraded.empty()) co_return Status::Ok();  // any primer of the table
  Hold(held, &batch.augment_held, &batch.augment_held_primers);
  batch.augment_held_all = false;
  std::set<std::string> waiting;
  Hold(waited, &waiting, &batch.augment_held_primers);
  for (const auto& key : waiting) {
    const auto it = batch.plan.keys.find(key);
    if (batch.augment_held.count(key) || it == batch.plan.keys.end()) continue;
    if (RouteFor(key, it->second, batch) == Route::kAugment) batch.wait_keys.insert(key);
  }
  if (!batch.wait_keys.empty()) batch.wait_claims = std::move(claims);
  co_return Status::Ok();
}

Task<bool> Executor::WaitForClaims(const std::set<int64_t>& claims) {
  std::vector<std::string> ids;
  for (int64_t c : claims) ids.push_back(std::to_string(c));
  const std::string array = pg::ArrayLiteral(ids);
  const auto deadline = std::chrono::steady_clock::now() + kMaxClaimWait;
  uint64_t delay_ms = 1;
  while (true) {
    ++progress_;
    pg::Params params = {array};
    auto open = co_await main_.Query(sql::File("daemon_claims_open.sql"), std::move(params));
    if (!open.ok()) co_return false;  // the keys are recomputed; a lost connection fails the batch later
    if (open->rows() == 1 && open->get(0, 0) == "0") co_return true;
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    co_await Sleep(main_.loop(), delay_ms);
    delay_ms = std::min<uint64_t>(delay_ms * 2, 20);
  }
}

Task<Status> Executor::ProduceAfterOlderClaims(Batch& batch) {
  if (batch.wait_keys.empty()) co_return Status::Ok();
  const std::set<std::string> keys = batch.wait_keys;
  spdlog::debug("waiting for {} earlier claim(s) to be written before augmenting {} products",
                batch.wait_claims.size(), keys.size());
  const bool written = co_await WaitForClaims(batch.wait_claims);
  if (!written) {
    spdlog::debug("an earlier claim was not written within {} s; recomputing {} products", kMaxClaimWait.count(),
                  keys.size());
  }
  // What the earlier claims left in the outbox (released, not consumed)
  // keeps its keys from being augmented, as does a wait that ran out.
  Status s = co_await CheckAugmentOrder(batch);
  if (!s.ok()) co_return s;
  for (const auto& key : keys) {
    if (!written || batch.wait_keys.count(key)) batch.augment_held.insert(key);
  }
  batch.wait_keys.clear();
  // The values the earlier batches wrote.
  std::map<std::string, Stored> now;
  s = co_await ReadStored(batch, false, false, &now);
  if (!s.ok()) co_return s;
  for (const auto& key : keys) {
    batch.stored.erase(key);
    if (auto it = now.find(key); it != now.end()) batch.stored[key] = it->second;
    s = co_await ProduceKey(key, batch.plan.keys.at(key), batch);
    if (!s.ok()) co_return s;
  }
  co_return Status::Ok();
}

}  // namespace kck
