// Helpers for kck_bench: fatal errors, latency statistics, a LISTEN
// connection that waits with poll(), the `kck listen` child process,
// running pgbench, and reading the daemon's per-batch debug lines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pg/connection.h"

namespace kck::bench {

using Clock = std::chrono::steady_clock;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
inline double MsSince(Clock::time_point t0) { return Ms(Clock::now() - t0); }

// A benchmark step failed: main() prints the message and exits 1 (the
// destructors stop the daemon and remove the cluster).
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void Die(const std::string& what);

template <typename T>
T Must(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what + ": " + v.status().message());
  return std::move(*v);
}
void Must(const Status& s, const std::string& what);

pg::Connection Connect(const std::string& conninfo);
pg::Result Exec(pg::Connection& c, std::string_view sql, const pg::Params& params = {});
void Script(pg::Connection& c, std::string_view sql);
long long QueryInt(pg::Connection& c, std::string_view sql, const pg::Params& params = {});

// Latency samples in milliseconds.
class Samples {
 public:
  void Add(double ms) { v_.push_back(ms); sorted_ = false; }
  size_t size() const { return v_.size(); }
  // Nearest-rank percentile, p in [0, 100].
  double Pct(double p);
  double Max();
  double Mean() const;

 private:
  std::vector<double> v_;
  bool sorted_ = false;
};

// A connection that LISTENs on one channel and waits for notifications
// with poll() on its socket (no polling queries).
class Listener {
 public:
  Listener(const std::string& conninfo, const std::string& channel);
  // Discards notifications already received or buffered.
  void Drain();
  // Waits until a notification whose payload satisfies `match` arrives;
  // returns the time it was read, or nullopt at `deadline`.
  std::optional<Clock::time_point> Wait(const std::function<bool(std::string_view)>& match,
                                        Clock::time_point deadline);

 private:
  pg::Connection conn_;
};

// `kck [--db CONNINFO] --log-level LEVEL listen ...` as a child process,
// stdout and stderr appended to `log_path`.
class Daemon {
 public:
  Daemon(const std::string& kck, const std::string& conninfo, const std::string& log_path,
         const std::string& log_level, const std::vector<std::string>& extra = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  // SIGTERM (clean stop: finishes the batch in flight), waits; SIGKILL
  // after 10 s. Returns the exit code (128+signal when killed).
  int Stop();
  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
};

// Runs a shell command; returns its combined stdout+stderr and exit code.
struct CommandResult {
  std::string output;
  int exit_code = -1;
};
CommandResult RunCommand(const std::string& command);

// pgbench's summary.
struct PgbenchResult {
  double tps = 0;
  long long transactions = 0;
};
PgbenchResult ParsePgbench(const CommandResult& r, const std::string& command);

// The daemon's debug line per batch:
// "batch: N changes, K products written (A augmented), E errors in X ms".
struct BatchTotals {
  long long batches = 0, changes = 0, keys = 0, errors = 0;
  double ms = 0, max_ms = 0;
  Samples each_ms;  // one sample per batch that applied changes
};
// Sums the batch lines of `log_path` from byte `offset` on.
BatchTotals ReadBatchLines(const std::string& log_path, long long offset);
long long FileSize(const std::string& path);

// The output of `cmd` (trimmed), or "" when it fails.
std::string Capture(const std::string& cmd);

}  // namespace kck::bench
