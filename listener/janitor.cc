#include "listener/janitor.h"

#include <spdlog/spdlog.h>

#include <string>

#include "listener/json_text.h"
#include "sql/embedded.h"

namespace kck {
namespace {

constexpr auto kWarnEvery = std::chrono::minutes(1);

}  // namespace

Task<StatusOr<long long>> Janitor::Upkeep() {
  pg::Params none;
  auto r = co_await conn_.Query(sql::File("daemon_upkeep.sql"), std::move(none));
  if (!r.ok()) co_return r.status();
  if (r->rows() == 1) {
    long long n = ParsedNumber<long long>(r->get(0, 0));
    long long released = ParsedNumber<long long>(r->get(0, 1));
    truncated_ += n;
    if (n > 0) spdlog::debug("outbox: truncated {} consumed part(s)", n);
    if (released > 0) {
      spdlog::warn("released {} claim(s) of daemons whose connection is gone; their changes are claimed again",
                   released);
    }
    co_return released;
  }
  co_return 0;
}

void Janitor::Failed(const Status& s) {
  const auto now = std::chrono::steady_clock::now();
  if (now - warned_at_ < kWarnEvery) return;
  warned_at_ = now;
  spdlog::warn("outbox upkeep failed (retrying every second; the outbox grows until this works): {}",
               pg::Excerpt(s.message(), 300));
}

}  // namespace kck
