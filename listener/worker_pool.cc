#include "listener/worker_pool.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <utility>

#include "pg/async_connection.h"
#include "pg/connection.h"

namespace kck {

namespace {

template <typename H>
void CloseAndDelete(H* handle) {
  if (handle == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* h) { delete reinterpret_cast<H*>(h); });
}

struct TimerData {
  WorkerPool* self;
  long long id;
};

}  // namespace

struct WorkerPool::Pending {
  Event done;
  StatusOr<nlohmann::json> result = Status::Runtime("no reply");
  uv_timer_t* timer = nullptr;

  void StopTimer() {
    if (timer == nullptr) return;
    delete static_cast<TimerData*>(timer->data);
    timer->data = nullptr;
    CloseAndDelete(timer);
    timer = nullptr;
  }
};

WorkerPool::WorkerPool(uv_loop_t* loop, std::string command, std::chrono::milliseconds timeout)
    : loop_(loop), command_(std::move(command)), timeout_(timeout) {}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Start() {
  stopping_ = false;
  Spawn();
}

void WorkerPool::Stop() {
  stopping_ = true;
  if (restart_timer_) {
    CloseAndDelete(restart_timer_);
    restart_timer_ = nullptr;
  }
  Kill("the daemon is stopping");
}

void WorkerPool::Restart(const std::string& why) {
  if (stopping_ || process_ == nullptr) return;
  spdlog::info("python worker: restarting (pid {}): {}", process_->pid, why);
  restarting_ = true;
  ready_ = false;
  uv_kill(-process_->pid, SIGTERM);
}

void WorkerPool::Spawn() {
  if (stopping_ || process_ != nullptr) return;
  in_ = new uv_pipe_t;
  out_ = new uv_pipe_t;
  uv_pipe_init(loop_, in_, 0);
  uv_pipe_init(loop_, out_, 0);
  out_->data = this;
  process_ = new uv_process_t;
  process_->data = this;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
  stdio[0].data.stream = reinterpret_cast<uv_stream_t*>(in_);
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(out_);
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  const char* args[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
  uv_process_options_t opts{};
  opts.file = "/bin/sh";
  opts.args = const_cast<char**>(args);
  opts.stdio = stdio;
  opts.stdio_count = 3;
  // Its own process group, so a kill reaches the shell and what it started.
  opts.flags = UV_PROCESS_DETACHED;
  opts.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    static_cast<WorkerPool*>(p->data)->OnExit(status, signal);
  };
  int rc = uv_spawn(loop_, process_, &opts);
  if (rc != 0) {
    spdlog::error("python worker: cannot start \"{}\": {}", command_, uv_strerror(rc));
    CloseAndDelete(process_);
    CloseAndDelete(in_);
    CloseAndDelete(out_);
    process_ = nullptr;
    in_ = out_ = nullptr;
    OnExit(127, 0);
    return;
  }
  ++spawns_;
  spdlog::info("python worker: started \"{}\" (pid {})", command_, process_->pid);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(out_),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      &WorkerPool::OnRead);
}

void WorkerPool::OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<WorkerPool*>(s->data);
  if (n > 0) {
    self->buffer_.append(buf->base, static_cast<size_t>(n));
    size_t nl;
    while ((nl = self->buffer_.find('\n')) != std::string::npos) {
      std::string line = self->buffer_.substr(0, nl);
      self->buffer_.erase(0, nl + 1);
      self->OnLine(line);
    }
  }
  delete[] buf->base;
  if (n < 0) uv_read_stop(s);  // EOF: the exit callback follows
}

void WorkerPool::OnLine(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("python worker: ignoring a line that is not a JSON object: {:.120}", std::string(line));
    return;
  }
  if (j.contains("hello")) {
    primers_.clear();
    protocol_ = j.contains("protocol") && j["protocol"].is_number_integer() ? j["protocol"].get<int>() : 1;
    if (j.contains("primers") && j["primers"].is_array()) {
      for (const auto& p : j["primers"]) {
        if (p.is_string()) primers_.insert(p.get<std::string>());
      }
    }
    ready_ = true;
    failures_ = 0;
    spdlog::info("python worker: ready with {} primers", primers_.size());
    return;
  }
  if (!j.contains("id") || !j["id"].is_number_integer()) {
    spdlog::warn("python worker: reply without a request id: {:.200}", std::string(line));
    return;
  }
  auto it = pending_.find(j["id"].get<long long>());
  if (it == pending_.end()) return;  // timed out earlier
  auto p = it->second;
  pending_.erase(it);
  p->StopTimer();
  if (j.value("ok", false)) {
    p->result = std::move(j);
  } else if (j.value("cannot_augment", false)) {
    p->result = Status::Runtime("cannot augment");
  } else {
    std::string error = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>()
                                                                     : std::string("worker reported failure");
    // A transient failure in the worker (its database connection broke, a
    // deadlock, a timeout) rolls the batch back like one in the daemon.
    p->result = j.value("transient", false) ? Status::Unavailable(error) : Status::Runtime(error);
  }
  p->done.Set();
}

void WorkerPool::FailAll(const std::string& why) {
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p->StopTimer();
    // The worker died or was killed: not the request's fault.
    p->result = Status::Unavailable(why);
    p->done.Set();
  }
}

void WorkerPool::Kill(const std::string& why) {
  if (process_ != nullptr) uv_kill(-process_->pid, SIGKILL);
  FailAll(why);
}

void WorkerPool::OnExit(int64_t status, int signal) {
  ready_ = false;
  if (process_) {
    CloseAndDelete(process_);
    process_ = nullptr;
  }
  if (in_) CloseAndDelete(in_);
  if (out_) CloseAndDelete(out_);
  in_ = out_ = nullptr;
  buffer_.clear();
  std::string how = signal ? "killed by signal " + std::to_string(signal) : "exited with status " + std::to_string(status);
  FailAll("python worker " + how);
  if (stopping_) return;
  if (std::exchange(restarting_, false)) {
    Spawn();
    return;
  }
  ++failures_;
  uint64_t delay = std::min<uint64_t>(100ull << std::min(failures_, 7), 10000);
  spdlog::warn("python worker {}; restarting in {} ms", how, delay);
  restart_timer_ = new uv_timer_t;
  uv_timer_init(loop_, restart_timer_);
  restart_timer_->data = this;
  uv_timer_start(
      restart_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<WorkerPool*>(t->data);
        CloseAndDelete(self->restart_timer_);
        self->restart_timer_ = nullptr;
        self->Spawn();
      },
      delay, 0);
}

Task<bool> WorkerPool::Ready() {
  // A worker being restarted is waited for (up to the timeout), so a
  // restart does not turn the requests of the moment into errors.
  for (auto waited = std::chrono::milliseconds(0); (!ready_ || in_ == nullptr) && !stopping_ && waited < timeout_;
       waited += std::chrono::milliseconds(50)) {
    co_await Sleep(loop_, 50);
  }
  co_return ready_ && in_ != nullptr;
}

Task<StatusOr<nlohmann::json>> WorkerPool::Call(nlohmann::json request) {
  const bool ready = co_await Ready();
  if (!ready) co_return Status::Unavailable("python worker is not running");
  long long id = next_id_++;
  request["id"] = id;
  auto p = std::make_shared<Pending>();
  pending_[id] = p;
  auto* line = new std::string(request.dump() + "\n");
  auto* req = new uv_write_t;
  req->data = line;
  uv_buf_t buf = uv_buf_init(line->data(), static_cast<unsigned>(line->size()));
  uv_write(req, reinterpret_cast<uv_stream_t*>(in_), &buf, 1, [](uv_write_t* r, int) {
    delete static_cast<std::string*>(r->data);
    delete r;
  });
  p->timer = new uv_timer_t;
  uv_timer_init(loop_, p->timer);
  p->timer->data = new TimerData{this, id};
  uv_timer_start(
      p->timer,
      [](uv_timer_t* t) {
        auto* d = static_cast<TimerData*>(t->data);
        WorkerPool* self = d->self;
        long long id = d->id;
        auto it = self->pending_.find(id);
        if (it == self->pending_.end()) return;
        spdlog::error("python worker: request {} timed out after {} ms; killing the worker", id,
                      self->timeout_.count());
        auto p = it->second;
        self->pending_.erase(it);
        p->StopTimer();
        // Counted like a statement_timeout: retried, then the key's error.
        p->result = Status::Unavailable("python worker timed out after " + std::to_string(self->timeout_.count()) +
                                        " ms")
                        .WithSqlstate(std::string(pg::kQueryCanceled));
        self->Kill("python worker killed after a timeout");
        p->done.Set();
      },
      static_cast<uint64_t>(timeout_.count()), 0);
  co_await p->done;
  co_return std::move(p->result);
}

}  // namespace kck
