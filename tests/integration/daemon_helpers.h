// Helpers for integration tests that drive kck as a user would: the kck
// binary as a process, the bookstore schema, and the oracle every test
// ends with: the cache equals a recompute from scratch.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"
#include "primers/config.h"
#include "primers/products.h"
#include "sql/embedded.h"
#include "triggers/installer.h"

extern char** environ;

namespace kck::testing {

// A `kck listen` child process.
class DaemonProcess {
 public:
  // With a `log` path, the daemon's output (its log: spdlog writes to
  // stdout) goes to that file instead of the test's.
  explicit DaemonProcess(const std::string& conninfo, std::vector<std::string> extra = {},
                         const std::string& log = "", const std::string& level = "warn") {
    std::vector<std::string> args = {KCK_BINARY, "--db", conninfo, "--log-level", level, "listen"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!log.empty()) {
      posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, 1, 2);
    }
    if (posix_spawn(&pid_, KCK_BINARY, &actions, nullptr, argv.data(), environ) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~DaemonProcess() {
    if (pid_ > 0) Kill(SIGKILL);
  }
  // Sends `sig` and waits; returns the wait status.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return status;
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  // Waits for the process to exit on its own; returns its exit code, or -1
  // when it did not exit within `limit` (it is killed then).
  int ExitCode(std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    if (pid_ <= 0) return -1;
    auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > end) {
        Kill(SIGKILL);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = 0;
};

inline const char* kBookstoreSchema = R"sql(
CREATE TABLE store_author (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE store_book (id bigserial PRIMARY KEY, author_id bigint REFERENCES store_author (id),
                         title text NOT NULL, price numeric NOT NULL DEFAULT 10);
INSERT INTO store_author (name) SELECT 'author ' || i FROM generate_series(1, 20) i;
INSERT INTO store_book (author_id, title) SELECT 1 + i % 20, 'book ' || i FROM generate_series(1, 200) i;
)sql";

inline const char* kBookstoreConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)", "delete": "SELECT to_jsonb((:value)::int - 1)"}}},
  {"name": "total", "parameters": [],
   "compute": "SELECT jsonb_build_object('books', count(*), 'price', sum(price)) FROM store_book",
   "depends_on": [{"table": "store_book", "params": {}}]}
]})json";

inline void MustExec(pg::Connection& conn, const std::string& sql) {
  Status s = conn.ExecScript(sql);
  ASSERT_TRUE(s.ok()) << s.message() << "\n" << sql;
}

// Runs the kck binary through the shell: `args`, then `streams`, the shell's
// redirections choosing what is captured ("2>&1 >/dev/null": stderr only,
// "2>/dev/null": stdout only, "2>&1": both). Returns the exit code and the
// captured text.
inline std::pair<int, std::string> RunKckShell(const std::string& args, const std::string& streams) {
  std::string cmd = std::string(KCK_BINARY) + " " + args + " " + streams;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

inline void InstallConfig(pg::Connection& conn, const std::string& json) {
  auto config = ParseConfig(json, "test.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto report = Install(conn, *config, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
}

// Reads (and so stores) each key.
inline void Prime(pg::Connection& conn, const std::vector<std::string>& keys) {
  auto registry = LoadRegistry(conn);
  ASSERT_TRUE(registry.ok()) << registry.status().message();
  Products products(conn, *registry);
  for (const auto& k : keys) {
    auto v = products.Get(k);
    ASSERT_TRUE(v.ok()) << k << ": " << v.status().message();
  }
}

// The schema version `kck install` migrates to: the last numbered sql/ file.
inline std::string LatestSchemaVersion() {
  int latest = 0;
  for (const auto& f : sql::EmbeddedFiles()) {
    if (f.name.size() > 4 && f.name[3] == '_' && std::isdigit(static_cast<unsigned char>(f.name[0]))) {
      latest = std::max(latest, std::stoi(std::string(f.name.substr(0, 3))));
    }
  }
  return std::to_string(latest);
}

// A daemon log file (DaemonProcess's `log`) for this test process.
inline std::string LogPath(const std::string& name) {
  return ::testing::TempDir() + "kck_" + std::to_string(getpid()) + "_" + name + ".log";
}

inline std::string FileText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline long long OutboxDepth(pg::Connection& conn) {
  auto r = conn.Exec("SELECT count(*) FROM kck.changes");
  return r.ok() ? std::stoll(std::string(r->get(0, 0))) : -1;
}

// Waits until the outbox is empty (and stays so briefly).
inline bool WaitDrained(pg::Connection& conn, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (OutboxDepth(conn) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (OutboxDepth(conn) == 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// One value of a one-row query, or "<error: ...>".
// How many times `needle` occurs in `text`.
inline size_t Occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Waits until the file at `path` contains `text`.
inline bool WaitForLog(const std::string& path, const std::string& text,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  return WaitFor([&] { return FileText(path).find(text) != std::string::npos; }, limit);
}

inline std::string Scalar(pg::Connection& conn, const std::string& sql, const pg::Params& params = {}) {
  auto r = conn.Exec(sql, params);
  if (!r.ok()) return "<error: " + r.status().message() + ">";
  if (r->rows() != 1) return "<" + std::to_string(r->rows()) + " rows>";
  return r->is_null(0, 0) ? "<null>" : std::string(r->get(0, 0));
}

inline std::string Stored(pg::Connection& conn, const std::string& key) {
  auto r = conn.Exec("SELECT value::text FROM kck.cache WHERE key = $1", {key});
  return (r.ok() && r->rows() == 1) ? std::string(r->get(0, 0)) : "<absent>";
}

// Every stored product equals what its primer computes now.
inline void ExpectCacheMatchesRecompute(pg::Connection& conn) {
  auto registry = LoadRegistry(conn);
  ASSERT_TRUE(registry.ok()) << registry.status().message();
  auto rows = conn.Exec("SELECT key, primer, value::text FROM kck.cache ORDER BY key");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_GT(rows->rows(), 0);
  for (int i = 0; i < rows->rows(); ++i) {
    std::string key(rows->get(i, 0));
    const Primer* p = (*registry)->Find(rows->get(i, 1));
    ASSERT_NE(p, nullptr);
    auto values = DecodeKey(key, p->spec.name, p->spec.params);
    ASSERT_TRUE(values.ok());
    auto fresh = conn.Exec(p->compute.sql, BindValues(p->compute, p->KeyValues(*values)));
    ASSERT_TRUE(fresh.ok()) << fresh.status().message();
    auto same = conn.Exec("SELECT $1::jsonb = $2::jsonb", {std::string(rows->get(i, 2)), fresh->get_opt(0, 0)});
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(same->get(0, 0), "t") << key << ": stored " << rows->get(i, 2) << " but recompute gives "
                                    << fresh->get(0, 0);
  }
}

// Sets environment variables (for the daemons it starts) while in scope.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<std::string, std::string>> vars) {
    for (const auto& [k, v] : vars) {
      setenv(k.c_str(), v.c_str(), 1);
      names_.push_back(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& k : names_) unsetenv(k.c_str());
  }

 private:
  std::vector<std::string> names_;
};

// A daemon that pauses the first time it reaches `step` (listener/fault.h)
// until Release(). Only this daemon: the environment that asks for the
// pause is set while it is spawned, so daemons started later do not pause.
class PausedDaemon {
 public:
  PausedDaemon(const std::string& conninfo, const std::string& step, std::vector<std::string> args = {},
               const std::string& log = "", const std::string& level = "warn")
      : file_(std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/kck_pause_" +
              std::to_string(getpid()) + "_" + std::to_string(++counter_)) {
    ScopedEnv pause({{"KCK_FAULT_PAUSE", step}, {"KCK_FAULT_PAUSE_FILE", file_}});
    daemon_.emplace(conninfo, std::move(args), log, level);
  }
  ~PausedDaemon() {
    std::remove(file_.c_str());
    std::remove((file_ + ".paused").c_str());
  }
  bool WaitPaused() {
    return WaitFor([&] { return std::ifstream(file_ + ".paused").good(); }, std::chrono::seconds(20));
  }
  void Release() { std::ofstream(file_) << "go\n"; }
  DaemonProcess& process() { return *daemon_; }

 private:
  static inline int counter_ = 0;
  std::string file_;
  std::optional<DaemonProcess> daemon_;
};

// A fresh database with the bookstore tables; subclasses install primers.
class BookstoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = FreshDatabase();
    conn_ = Connect(conninfo_);
    MustExec(conn_, kBookstoreSchema);
  }
  std::string conninfo_;
  pg::Connection conn_;
};

}  // namespace kck::testing
