#include "listener/error_retry.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "listener/executor.h"
#include "pg/connection.h"
#include "sql/embedded.h"

namespace kck {

bool ErrorRetry::Due(const std::string& primer, Clock::time_point now) const {
  auto it = waits_.find(primer);
  return it == waits_.end() || now >= it->second.next;
}

void ErrorRetry::Failed(const std::string& primer, Clock::time_point now) {
  auto [it, fresh] = waits_.try_emplace(primer, Wait{now, first_});
  if (!fresh) it->second.backoff = std::min<Clock::duration>(it->second.backoff * 2, most_);
  it->second.next = now + it->second.backoff;
}

void ErrorRetry::Cleared(const std::string& primer) { waits_.erase(primer); }

Task<StatusOr<bool>> Executor::Probe(const Primer& primer, const std::string& key, BatchStats* total) {
  Batch batch;
  batch.plan.AddKey(key, &primer, 0, false, true);
  auto stats = RegistryMovedOr(co_await Apply(batch));
  if (!stats.ok()) co_return stats.status();
  total->keys += stats->keys;
  total->errors += stats->errors;
  total->removed += stats->removed;
  total->registry_moved |= stats->registry_moved;
  co_return !stats->registry_moved && stats->errors == 0;
}

Task<Status> Executor::RetryPrimer(ErrorRetry& retry, const Primer& primer, std::string key,
                                   std::chrono::steady_clock::time_point now, BatchStats* total) {
  const std::string& name = primer.spec.name;
  auto computed = co_await Probe(primer, key, total);
  if (!computed.ok()) co_return computed.status();
  if (!*computed) {
    retry.Failed(name, now);
    spdlog::debug("primer \"{}\": key \"{}\" still fails; trying again later", name, pg::Excerpt(key, 120));
    co_return Status::Ok();
  }
  retry.Cleared(name);
  pg::Params params{name};
  auto queued = co_await main_.Query(sql::File("daemon_retry_errors.sql"), std::move(params));
  if (!queued.ok()) co_return queued.status().WithContext("queueing products in error");
  spdlog::info("primer \"{}\": key \"{}\" computes again; recomputing its {} other products in error", name,
               pg::Excerpt(key, 120), queued->get(0, 0));
  co_return Status::Ok();
}

Task<StatusOr<BatchStats>> Executor::RetryErrors(ErrorRetry& retry, std::chrono::steady_clock::time_point now) {
  BatchStats total;
  auto probes = co_await main_.Query(sql::File("daemon_error_probes.sql"));
  if (!probes.ok()) co_return probes.status().WithContext("listing products in error");
  for (int i = 0; i < probes->rows() && !total.registry_moved; ++i) {
    const Primer* primer = registry_->Find(std::string(probes->get(i, 0)));
    if (primer == nullptr || !retry.Due(primer->spec.name, now)) continue;
    Status s = co_await RetryPrimer(retry, *primer, std::string(probes->get(i, 1)), now, &total);
    if (!s.ok()) co_return s;
  }
  co_return total;
}

}  // namespace kck
