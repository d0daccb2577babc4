// The Python worker: a `manage.py kck_worker` child process that computes,
// augments and maps keys for Python primers, over JSON lines on its
// stdin/stdout. Supervised: restarted with backoff when it exits, a
// request that takes longer than the timeout kills it.
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/task.h"

namespace kck {

class WorkerPool {
 public:
  WorkerPool(uv_loop_t* loop, std::string command, std::chrono::milliseconds timeout);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts the process (and again after it exits, with backoff).
  void Start();
  // Stops the process for good.
  void Stop();
  // Replaces the process with a new one at once (the primers changed, so
  // the code may have too). Requests in flight fail as unavailable.
  void Restart(const std::string& why);
  // Sends one request ({"op": ...}; the id is added) and awaits its reply.
  // Fails if the worker is down, dies, or does not answer in time.
  Task<StatusOr<nlohmann::json>> Call(nlohmann::json request);
  // Processes started after the first (exits, kills, restarts), for metrics.
  long long restarts() const { return spawns_ > 0 ? spawns_ - 1 : 0; }
  // Waits for a worker that is starting or restarting (up to the timeout);
  // whether one is running.
  Task<bool> Ready();
  // The protocol version the running worker announced (docs/DESIGN.md);
  // valid once Ready().
  int protocol() const { return protocol_; }

 private:
  struct Pending;
  void Spawn();
  void OnExit(int64_t status, int signal);
  void OnLine(std::string_view line);
  void FailAll(const std::string& why);
  void Kill(const std::string& why);
  static void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);

  uv_loop_t* loop_;
  std::string command_;
  std::chrono::milliseconds timeout_;
  uv_process_t* process_ = nullptr;
  uv_pipe_t* in_ = nullptr;   // worker's stdin
  uv_pipe_t* out_ = nullptr;  // worker's stdout
  uv_timer_t* restart_timer_ = nullptr;
  std::string buffer_;
  bool ready_ = false, stopping_ = false, restarting_ = false;
  int failures_ = 0;
  int protocol_ = 1;
  long long next_id_ = 1;
  long long spawns_ = 0;  // processes started
  std::map<long long, std::shared_ptr<Pending>> pending_;
  std::set<std::string> primers_;
};

}  // namespace kck
