#include "listener/janitor.h"

#include <spdlog/spdlog.h>

#include <string>

#include "listener/json_text.h"
#include "sql/embedded.h"

namespace kck {
namespace {

constexpr auto kWarnEvery = std::chrono::minutes(1);

}  // namespace

Task<long long> Janitor::Upkeep() {
  pg::Params none;
  auto r = co_await conn_.Query(sql::File("daemon_upkeep.sql"), std::move(none));
  if (r.ok() && r->rows() == 1) {
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
  const auto now = std::chrono::steady_clock::now();
  if (now - warned_at_ < kWarnEvery) co_return 0;
  warned_at_ = now;
  spdlog::warn("outbox upkeep failed (retrying every second; the outbox grows until this works): {}",
               pg::Excerpt(r.status().message(), 300));
  co_return 0;
}

}  // namespace kck
