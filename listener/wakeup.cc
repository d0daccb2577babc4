#include "listener/wakeup.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "sql/embedded.h"

namespace kck {
namespace {

constexpr auto kMaxWatch = std::chrono::seconds(10);
constexpr int kMaxDelayMs = 50;

bool IsEmptyArray(std::string_view a) { return a.empty() || a == "{}"; }

}  // namespace

Task<Status> Wakeup::Register() {
  open_.clear();
  id_ = std::to_string(PQbackendPID(conn_.raw()));
  pg::Params params = {id_};
  auto r = co_await conn_.Query(sql::File("daemon_listener_register.sql"), std::move(params));
  if (!r.ok()) co_return r.status().WithContext("registering in kck.listeners (did kck install run?)");
  co_return Status::Ok();
}

Task<Status> Wakeup::Unregister() {
  if (id_.empty() || !conn_.connected()) co_return Status::Ok();
  pg::Params params = {id_};
  auto r = co_await conn_.Query(sql::File("daemon_listener_unregister.sql"), std::move(params));
  co_return r.ok() ? Status::Ok() : r.status();
}

Task<StatusOr<bool>> Wakeup::GoIdle() {
  open_.clear();
  pg::Params params = {id_};
  auto r = co_await conn_.Query(sql::File("daemon_listener_idle.sql"), std::move(params));
  if (!r.ok()) co_return r.status().WithContext("marking the daemon idle");
  if (r->rows() != 1) co_return Status::Runtime("kck.listener_idle returned no row");
  if (r->get(0, 0) == "t") co_return true;
  Watch(std::string(r->get(0, 1)));
  co_return false;
}

void Wakeup::Watch(std::string open_xids) {
  if (IsEmptyArray(open_xids)) return;
  open_ = std::move(open_xids);
  rechecks_ = 0;
  watch_since_ = std::chrono::steady_clock::now();
}

std::chrono::milliseconds Wakeup::delay() const {
  return std::chrono::milliseconds(std::min(1 << std::min(rechecks_, 6), kMaxDelayMs));
}

Task<StatusOr<bool>> Wakeup::Recheck() {
  if (open_.empty()) co_return false;
  pg::Params params = {open_};
  auto r = co_await conn_.Query(sql::File("daemon_listener_recheck.sql"), std::move(params));
  if (!r.ok()) co_return r.status().WithContext("rechecking the outbox");
  ++rechecks_;
  const bool pending = r->get(0, 0) == "t";
  std::string still_open(r->get(0, 1));
  if (pending || IsEmptyArray(still_open)) {
    open_.clear();
  } else if (std::chrono::steady_clock::now() - watch_since_ > kMaxWatch) {
    spdlog::debug("transactions open since the daemon went idle still run after 10 s: {}; the periodic look covers "
                  "them",
                  pg::Excerpt(still_open, 200));
    open_.clear();
  } else {
    open_ = std::move(still_open);
  }
  co_return pending;
}

}  // namespace kck
