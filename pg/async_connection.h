// A non-blocking PostgreSQL connection driven by the libuv loop: libpq in
// non-blocking mode, its socket watched with uv_poll. Queries are awaited
// from coroutines (common/task.h), one at a time. Notifications arrive
// through a callback whether or not a query is running.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <coroutine>
#include <functional>
#include <map>
#include <string>

#include "common/status.h"
#include "common/task.h"
#include "pg/connection.h"

namespace kck {

class AsyncConnection {
 public:
  explicit AsyncConnection(uv_loop_t* loop);
  ~AsyncConnection();
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  // Connects (closing any previous connection first).
  Task<Status> Connect(std::string conninfo);
  // Runs one statement with bound text parameters. Each distinct SQL text is
  // prepared once per connection (a named statement), so repeated queries
  // skip parsing and planning.
  // (Not coroutines themselves: GCC 12 mishandles string literals copied
  // into a coroutine frame, so these convert and call the *Impl ones.)
  Task<StatusOr<pg::Result>> Query(std::string_view sql, pg::Params params = {}) {
    return QueryImpl(std::string(sql), std::move(params));
  }
  // Like Query, for a statement too rarely repeated to keep prepared (the
  // unnamed statement: parsed and planned every time).
  Task<StatusOr<pg::Result>> QueryOnce(std::string_view sql, pg::Params params = {}) {
    return QueryOnceImpl(std::string(sql), std::move(params));
  }
  // Runs statements with the simple protocol (no parameters); returns the
  // last result, or the first error.
  Task<StatusOr<pg::Result>> Script(std::string_view sql) { return ScriptImpl(std::string(sql)); }
  // Runs statements back to back in one round trip (libpq pipeline mode),
  // each prepared like Query's. Returns every result, or the first error
  // (the server skips the statements after it).
  using Statement = std::pair<std::string, pg::Params>;
  Task<StatusOr<std::vector<pg::Result>>> Pipeline(std::vector<Statement> statements);
  // Like Pipeline, with each statement on its own (a sync after each: one
  // failing does not skip the others). Returns each statement's result or
  // error; the call itself fails only when the connection does.
  using EachResult = std::vector<StatusOr<pg::Result>>;
  Task<StatusOr<EachResult>> PipelineEach(std::vector<Statement> statements);
  // Closes the connection; a query in flight fails.
  void Close();

  bool connected() const { return conn_ != nullptr && !broken_; }
  uv_loop_t* loop() const { return loop_; }
  // Fault injection (listener/fault.h): shuts the socket down now, or right
  // after the next Pipeline has sent its statements, so what follows fails
  // exactly as on a lost connection.
  void CutSocket();
  void CutAfterNextSend() { cut_after_send_ = true; }
  // Called with the channel of each notification.
  void set_on_notify(std::function<void(const std::string&)> cb) { on_notify_ = std::move(cb); }
  // Called once when the connection breaks (not on Close()).
  void set_on_broken(std::function<void(const std::string&)> cb) { on_broken_ = std::move(cb); }
  PGconn* raw() const { return conn_.get(); }

 private:
  struct SocketReady;  // awaitable: the socket is readable/writable
  SocketReady WaitSocket(int events);
  Status StartPoll();
  void StopPoll();
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void DrainNotifications();
  void MarkBroken(const std::string& why);
  Status Lost() const;
  Status SendFailed();
  bool SendPrepared(const std::string& name, const pg::Params& params);
  Status EndPipeline();
  Task<StatusOr<pg::Result>> Collect();
  Task<Status> Flush();
  Task<Status> AwaitResult();  // until PQgetResult will not block
  Task<StatusOr<std::string>> PreparedName(const std::string& sql);
  void ForgetIfStale(const std::string& sql, const Status& error);
  Task<StatusOr<pg::Result>> QueryImpl(std::string sql, pg::Params params);
  Task<StatusOr<pg::Result>> QueryOnceImpl(std::string sql, pg::Params params);
  Task<StatusOr<pg::Result>> ScriptImpl(std::string sql);

  uv_loop_t* loop_;
  pg::ConnPtr conn_;
  uv_poll_t* poll_ = nullptr;  // owned; freed in its close callback
  int poll_fd_ = -1;
  int poll_events_ = 0;
  std::coroutine_handle<> waiter_;  // the coroutine awaiting the socket
  int waiter_events_ = 0;
  std::map<std::string, std::string, std::less<>> prepared_;  // SQL text -> statement name
  long long next_statement_ = 0;
  bool busy_ = false;    // a query is in flight
  bool broken_ = false;
  bool cut_after_send_ = false;
  std::string last_error_;
  std::function<void(const std::string&)> on_notify_;
  std::function<void(const std::string&)> on_broken_;
};

// Sleeps on the loop without blocking it.
class Sleep {
 public:
  Sleep(uv_loop_t* loop, uint64_t ms) : loop_(loop), ms_(ms) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() noexcept {}

 private:
  uv_loop_t* loop_;
  uint64_t ms_;
};

}  // namespace kck
