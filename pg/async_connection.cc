#include "pg/async_connection.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <utility>

namespace kck {

struct AsyncConnection::SocketReady {
  AsyncConnection* self;
  int events;
  bool await_ready() const noexcept { return self->broken_ || self->poll_ == nullptr; }
  void await_suspend(std::coroutine_handle<> h) {
    self->waiter_ = h;
    self->waiter_events_ = events;
    int want = UV_READABLE | events;
    if (want != self->poll_events_) {
      self->poll_events_ = want;
      uv_poll_start(self->poll_, want, &AsyncConnection::OnPoll);
    }
  }
  void await_resume() noexcept {}
};

AsyncConnection::AsyncConnection(uv_loop_t* loop) : loop_(loop) {}

AsyncConnection::~AsyncConnection() {
  waiter_ = nullptr;
  Close();
}

AsyncConnection::SocketReady AsyncConnection::WaitSocket(int events) { return SocketReady{this, events}; }

Status AsyncConnection::StartPoll() {
  int fd = PQsocket(conn_.get());
  if (fd < 0) return Status::Runtime("connection has no socket");
  if (poll_ != nullptr && fd == poll_fd_) return Status::Ok();
  StopPoll();
  poll_ = new uv_poll_t;
  if (uv_poll_init(loop_, poll_, fd) != 0) {
    delete poll_;
    poll_ = nullptr;
    return Status::Runtime("uv_poll_init failed");
  }
  poll_->data = this;
  poll_fd_ = fd;
  poll_events_ = UV_READABLE;
  uv_poll_start(poll_, UV_READABLE, &AsyncConnection::OnPoll);
  return Status::Ok();
}

void AsyncConnection::StopPoll() {
  if (poll_ == nullptr) return;
  uv_poll_stop(poll_);
  poll_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
  poll_fd_ = -1;
}

void AsyncConnection::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<AsyncConnection*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    self->MarkBroken(std::string("socket error: ") + uv_strerror(status));
    return;
  }
  if (self->waiter_ && (events & (UV_READABLE | self->waiter_events_))) {
    auto w = std::exchange(self->waiter_, nullptr);
    w.resume();
    return;
  }
  if (!self->busy_ && (events & UV_READABLE) && self->conn_) {
    if (!PQconsumeInput(self->conn_.get())) {
      self->MarkBroken(pg::ConnectionError(self->conn_.get()));
      return;
    }
    self->DrainNotifications();
  }
}

void AsyncConnection::DrainNotifications() {
  while (conn_) {
    PGnotify* n = PQnotifies(conn_.get());
    if (n == nullptr) break;
    std::string channel = n->relname;
    PQfreemem(n);
    if (on_notify_) on_notify_(channel);
  }
}

Status AsyncConnection::Lost() const {
  return Status::Unavailable("connection lost: " + (last_error_.empty() ? std::string("closed") : last_error_));
}

void AsyncConnection::CutSocket() {
  if (!conn_) return;
  int fd = PQsocket(conn_.get());
  if (fd >= 0) shutdown(fd, SHUT_RDWR);
}

void AsyncConnection::MarkBroken(const std::string& why) {
  if (broken_) return;
  broken_ = true;
  last_error_ = why;
  StopPoll();
  if (auto w = std::exchange(waiter_, nullptr)) w.resume();
  if (on_broken_) on_broken_(why);
}

void AsyncConnection::Close() {
  StopPoll();
  conn_.reset();
  prepared_.clear();
  broken_ = false;
  busy_ = false;
  if (auto w = std::exchange(waiter_, nullptr)) w.resume();
}

Task<Status> AsyncConnection::Connect(std::string conninfo) {
  Close();
  conn_.reset(PQconnectStart(pg::WithApplicationName(conninfo, "kck").c_str()));
  if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
    std::string err = "could not connect to database: " + pg::ConnectionError(conn_.get());
    conn_.reset();
    co_return Status::Runtime(err);
  }
  PQsetNoticeProcessor(conn_.get(), [](void*, const char*) {}, nullptr);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) break;
    Status s = StartPoll();
    if (!s.ok()) break;
    co_await WaitSocket(st == PGRES_POLLING_WRITING ? UV_WRITABLE : 0);
    if (broken_ || !conn_) break;
    st = PQconnectPoll(conn_.get());
  }
  if (st != PGRES_POLLING_OK) {
    std::string err = "could not connect to database: " +
                      (conn_ ? pg::ConnectionError(conn_.get()) : std::string("connection closed"));
    StopPoll();
    conn_.reset();
    broken_ = false;
    co_return Status::Runtime(err);
  }
  PQsetnonblocking(conn_.get(), 1);
  Status s = StartPoll();
  if (!s.ok()) co_return s;
  broken_ = false;
  co_return Status::Ok();
}

Task<Status> AsyncConnection::Flush() {
  // Send what libpq could not send yet.
  while (conn_ && !broken_) {
    int r = PQflush(conn_.get());
    if (r == 0) break;
    if (r < 0) {
      MarkBroken(pg::ConnectionError(conn_.get()));
      break;
    }
    co_await WaitSocket(UV_WRITABLE);
    if (conn_ && !broken_ && !PQconsumeInput(conn_.get())) MarkBroken(pg::ConnectionError(conn_.get()));
  }
  co_return (conn_ && !broken_) ? Status::Ok() : Lost();
}

Task<Status> AsyncConnection::AwaitResult() {
  while (conn_ && !broken_ && PQisBusy(conn_.get())) {
    co_await WaitSocket(0);
    if (!conn_ || broken_) break;
    if (!PQconsumeInput(conn_.get())) MarkBroken(pg::ConnectionError(conn_.get()));
  }
  co_return (conn_ && !broken_) ? Status::Ok() : Lost();
}

Task<StatusOr<pg::Result>> AsyncConnection::Collect() {
  (void)co_await Flush();
  pg::Result last;
  Status error;
  while (conn_ && !broken_) {
    (void)co_await AwaitResult();
    if (!conn_ || broken_) break;
    PGresult* r = PQgetResult(conn_.get());
    if (r == nullptr) break;
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
      if (error.ok()) error = pg::ResultStatus(r);
      PQclear(r);
    } else {
      last = pg::Result(r);
    }
  }
  busy_ = false;
  if (conn_ && !broken_) DrainNotifications();
  if (!conn_ || broken_) {
    co_return Lost();
  }
  if (!error.ok()) co_return error;
  co_return std::move(last);
}

void AsyncConnection::ForgetIfStale(const std::string& sql, const Status& error) {
  // After DDL a prepared statement may fail for good; it is prepared afresh,
  // under a new name, next time. Other errors keep it (a primer that keeps
  // failing must not pile up statements on the server).
  if (error.message().find("cached plan must not change result type") != std::string::npos) prepared_.erase(sql);
}

Task<StatusOr<std::string>> AsyncConnection::PreparedName(const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) co_return it->second;
  std::string name = "kck_" + std::to_string(next_statement_++);
  if (!PQsendPrepare(conn_.get(), name.c_str(), sql.c_str(), 0, nullptr)) {
    co_return SendFailed();
  }
  busy_ = true;
  auto prepared = co_await Collect();
  if (!prepared.ok()) co_return prepared.status();
  prepared_.emplace(sql, name);
  co_return name;
}

namespace {

std::vector<const char*> Values(const pg::Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return values;
}

}  // namespace

// libpq refused to queue a statement: the connection is gone, or was never
// usable. The message is read before MarkBroken wakes anyone.
Status AsyncConnection::SendFailed() {
  std::string err = pg::ConnectionError(conn_.get());
  if (PQstatus(conn_.get()) == CONNECTION_BAD) MarkBroken(err);
  return Status::Unavailable(err);
}

// Queues the prepared statement `name` with `params`; false when libpq refused.
bool AsyncConnection::SendPrepared(const std::string& name, const pg::Params& params) {
  std::vector<const char*> values = Values(params);
  return PQsendQueryPrepared(conn_.get(), name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                             nullptr, 0) == 1;
}

// After a pipeline's results were read: leaves pipeline mode, or reports the
// lost connection.
Status AsyncConnection::EndPipeline() {
  busy_ = false;
  if (!conn_ || broken_) return Lost();
  PQexitPipelineMode(conn_.get());
  DrainNotifications();
  return Status::Ok();
}

Task<StatusOr<pg::Result>> AsyncConnection::QueryImpl(std::string sql, pg::Params params) {
  if (!connected()) co_return Status::Unavailable("not connected");
  auto name = co_await PreparedName(sql);
  if (!name.ok()) co_return name.status();
  if (!SendPrepared(*name, params)) co_return SendFailed();
  busy_ = true;
  auto result = co_await Collect();
  if (!result.ok()) ForgetIfStale(sql, result.status());
  co_return result;
}

Task<StatusOr<pg::Result>> AsyncConnection::QueryOnceImpl(std::string sql, pg::Params params) {
  if (!connected()) co_return Status::Unavailable("not connected");
  std::vector<const char*> values = Values(params);
  if (!PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                         nullptr, 0)) {
    co_return SendFailed();
  }
  busy_ = true;
  co_return co_await Collect();
}

Task<StatusOr<std::vector<pg::Result>>> AsyncConnection::Pipeline(std::vector<Statement> statements) {
  if (!connected()) co_return Status::Unavailable("not connected");
  std::vector<std::string> names;
  for (const auto& [sql, params] : statements) {
    auto name = co_await PreparedName(sql);
    if (!name.ok()) co_return name.status();
    names.push_back(*name);
  }
  if (!PQenterPipelineMode(conn_.get())) co_return SendFailed();
  busy_ = true;
  for (size_t i = 0; i < statements.size(); ++i) {
    if (!SendPrepared(names[i], statements[i].second)) co_return SendFailed();
  }
  if (!PQpipelineSync(conn_.get())) co_return SendFailed();
  Status flushed = co_await Flush();
  if (std::exchange(cut_after_send_, false)) {
    // A reply that reached the socket before the cut would still be read:
    // the connection counts as lost at once, whatever the server answered.
    CutSocket();
    MarkBroken("the socket was shut down after sending (KCK_FAULT_CUT)");
  }
  std::vector<pg::Result> results(statements.size());
  Status error;
  // Each statement's results end with NULL; the sync's result ends it all.
  for (size_t i = 0; i <= statements.size() && flushed.ok();) {
    Status ready = co_await AwaitResult();
    if (!ready.ok()) break;
    PGresult* r = PQgetResult(conn_.get());
    if (r == nullptr) {
      ++i;
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      results[i] = pg::Result(r);
    } else {
      if (error.ok() && st != PGRES_PIPELINE_ABORTED) error = pg::ResultStatus(r);
      PQclear(r);
    }
  }
  Status ended = EndPipeline();
  if (!ended.ok()) co_return ended;
  if (!error.ok()) {
    for (const auto& [sql, params] : statements) ForgetIfStale(sql, error);
    co_return error;
  }
  co_return results;
}

Task<StatusOr<AsyncConnection::EachResult>> AsyncConnection::PipelineEach(std::vector<Statement> statements) {
  if (!connected()) co_return Status::Unavailable("not connected");
  EachResult results;  // pg::Result moves, it does not copy
  results.reserve(statements.size());
  for (size_t i = 0; i < statements.size(); ++i) results.emplace_back(Status::Runtime("not sent"));
  std::vector<std::string> names(statements.size());
  for (size_t i = 0; i < statements.size(); ++i) {
    auto name = co_await PreparedName(statements[i].first);
    if (!name.ok() && (name.status().transient() || !connected())) co_return name.status();
    if (name.ok()) {
      names[i] = *name;
    } else {
      results[i] = name.status();
    }
  }
  if (!PQenterPipelineMode(conn_.get())) co_return SendFailed();
  busy_ = true;
  std::vector<size_t> sent;
  for (size_t i = 0; i < statements.size(); ++i) {
    if (names[i].empty()) continue;
    if (!SendPrepared(names[i], statements[i].second) || !PQpipelineSync(conn_.get())) co_return SendFailed();
    sent.push_back(i);
  }
  Status flushed = co_await Flush();
  // Each statement's results end with NULL, then its sync's result.
  for (size_t at = 0; at < sent.size() && flushed.ok();) {
    Status ready = co_await AwaitResult();
    if (!ready.ok()) break;
    PGresult* r = PQgetResult(conn_.get());
    if (r == nullptr) continue;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      ++at;
    } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      results[sent[at]] = pg::Result(r);
    } else {
      results[sent[at]] = pg::ResultStatus(r);
      PQclear(r);
    }
  }
  Status ended = EndPipeline();
  if (!ended.ok()) co_return ended;
  for (size_t i = 0; i < statements.size(); ++i) {
    if (!results[i].ok()) ForgetIfStale(statements[i].first, results[i].status());
  }
  co_return results;
}

Task<StatusOr<pg::Result>> AsyncConnection::ScriptImpl(std::string sql) {
  if (!connected()) co_return Status::Unavailable("not connected");
  if (!PQsendQuery(conn_.get(), sql.c_str())) {
    co_return SendFailed();
  }
  busy_ = true;
  co_return co_await Collect();
}

void Sleep::await_suspend(std::coroutine_handle<> h) {
  auto* timer = new uv_timer_t;
  uv_timer_init(loop_, timer);
  timer->data = h.address();
  uv_timer_start(
      timer,
      [](uv_timer_t* t) {
        auto handle = std::coroutine_handle<>::from_address(t->data);
        uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* x) { delete reinterpret_cast<uv_timer_t*>(x); });
        handle.resume();
      },
      ms_, 0);
}

}  // namespace kck
