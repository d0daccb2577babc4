#include "bench/bench_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <thread>

extern char** environ;

namespace kck::bench {

void Die(const std::string& what) { throw BenchError(what); }

void Must(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.message());
}

pg::Connection Connect(const std::string& conninfo) {
  return Must(pg::Connection::Open(conninfo), "connecting");
}

pg::Result Exec(pg::Connection& c, std::string_view sql, const pg::Params& params) {
  auto r = c.Exec(sql, params);
  if (!r.ok()) Die(std::string(sql.substr(0, 120)) + ": " + r.status().message());
  return std::move(*r);
}

void Script(pg::Connection& c, std::string_view sql) {
  Status s = c.ExecScript(sql);
  if (!s.ok()) Die(std::string(sql.substr(0, 120)) + ": " + s.message());
}

long long QueryInt(pg::Connection& c, std::string_view sql, const pg::Params& params) {
  pg::Result r = Exec(c, sql, params);
  if (r.rows() != 1 || r.is_null(0, 0)) Die(std::string(sql) + ": expected one value");
  return std::stoll(std::string(r.get(0, 0)));
}

double Samples::Pct(double p) {
  if (v_.empty()) return NAN;
  if (!sorted_) {
    std::sort(v_.begin(), v_.end());
    sorted_ = true;
  }
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v_.size())));
  return v_[std::clamp<size_t>(rank, 1, v_.size()) - 1];
}

double Samples::Max() { return Pct(100); }

double Samples::Mean() const {
  if (v_.empty()) return NAN;
  return std::accumulate(v_.begin(), v_.end(), 0.0) / static_cast<double>(v_.size());
}

Listener::Listener(const std::string& conninfo, const std::string& channel) : conn_(Connect(conninfo)) {
  Script(conn_, "LISTEN " + channel);
}

void Listener::Drain() {
  PGconn* c = conn_.raw();
  for (;;) {
    if (!PQconsumeInput(c)) Die("listener: " + pg::ConnectionError(c));
    bool any = false;
    while (PGnotify* n = PQnotifies(c)) {
      PQfreemem(n);
      any = true;
    }
    if (!any) {
      pollfd pfd{PQsocket(c), POLLIN, 0};
      if (poll(&pfd, 1, 0) <= 0) return;
    }
  }
}

std::optional<Clock::time_point> Listener::Wait(const std::function<bool(std::string_view)>& match,
                                                Clock::time_point deadline) {
  PGconn* c = conn_.raw();
  for (;;) {
    if (!PQconsumeInput(c)) Die("listener: " + pg::ConnectionError(c));
    while (PGnotify* n = PQnotifies(c)) {
      bool ok = match(n->extra ? std::string_view(n->extra) : std::string_view());
      PQfreemem(n);
      if (ok) return Clock::now();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd pfd{PQsocket(c), POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (rc < 0 && errno != EINTR) Die(std::string("poll: ") + std::strerror(errno));
  }
}

Daemon::Daemon(const std::string& kck, const std::string& conninfo, const std::string& log_path,
               const std::string& log_level, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {kck, "--db", conninfo, "--log-level", log_level, "listen"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawn(&pid_, kck.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = 0;
    Die("starting " + kck + ": " + std::strerror(rc));
  }
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Daemon::running() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

int Daemon::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  auto end = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (Clock::now() > end) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = 0;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

CommandResult RunCommand(const std::string& command) {
  CommandResult out;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) Die("popen " + command + ": " + std::strerror(errno));
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.output.append(buf, n);
  int status = pclose(p);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

PgbenchResult ParsePgbench(const CommandResult& r, const std::string& command) {
  PgbenchResult res;
  auto tps = r.output.find("tps = ");
  auto txns = r.output.find("number of transactions actually processed: ");
  if (r.exit_code != 0 || tps == std::string::npos || txns == std::string::npos) {
    Die("pgbench failed (" + command + "):\n" + r.output);
  }
  res.tps = std::strtod(r.output.c_str() + tps + 6, nullptr);
  res.transactions = std::strtoll(r.output.c_str() + txns + 43, nullptr, 10);
  return res;
}

long long FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0;
}

BatchTotals ReadBatchLines(const std::string& log_path, long long offset) {
  BatchTotals t;
  std::ifstream in(log_path);
  if (!in) return t;
  in.seekg(offset);
  std::string line;
  while (std::getline(in, line)) {
    auto p = line.find("batch: ");
    if (p == std::string::npos) continue;
    long long changes = 0, keys = 0, augmented = 0, unchanged = 0, fresh = 0, errors = 0;
    double ms = 0;
    // The daemon's debug line (listener/daemon.cc, Daemon::Count).
    if (std::sscanf(line.c_str() + p,
                    "batch: %lld changes, %lld products written (%lld augmented), %lld unchanged, %lld already "
                    "fresh, %lld errors in %lf ms",
                    &changes, &keys, &augmented, &unchanged, &fresh, &errors, &ms) == 7) {
      ++t.batches;
      t.changes += changes;
      t.keys += keys;
      t.errors += errors;
      t.ms += ms;
      t.max_ms = std::max(t.max_ms, ms);
      t.each_ms.Add(ms);
    }
  }
  return t;
}

std::string Capture(const std::string& cmd) {
  CommandResult r = RunCommand(cmd);
  if (r.exit_code != 0) return "";
  std::string s = r.output;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace kck::bench
