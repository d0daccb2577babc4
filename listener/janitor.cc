#include "listener/janitor.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace kck {
namespace {

constexpr std::string_view kTruncateSql = "SELECT kck.outbox_truncate()";
constexpr auto kWarnEvery = std::chrono::minutes(1);

}  // namespace

Task<void> Janitor::TruncateOutbox() {
  pg::Params none;
  auto r = co_await conn_.Query(kTruncateSql, std::move(none));
  if (r.ok()) {
    long long n = r->rows() == 1 ? std::strtoll(std::string(r->get(0, 0)).c_str(), nullptr, 10) : 0;
    truncated_ += n;
    if (n > 0) spdlog::debug("outbox: truncated {} consumed part(s)", n);
    co_return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - warned_at_ < kWarnEvery) co_return;
  warned_at_ = now;
  spdlog::warn("outbox: could not truncate its consumed parts (retrying every second; the outbox grows until "
               "this works): {}",
               pg::Excerpt(r.status().message(), 300));
}

}  // namespace kck
