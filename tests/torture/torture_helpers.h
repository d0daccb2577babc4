// Helpers for the torture suite: the seed, short/long sizes, kck processes
// with their own environment and log files, the torture schema and
// primers, "quiet" (outbox empty and daemons idle) and the oracle in a form
// that reports every mismatch in one message.
#pragma once

#include <atomic>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/daemon_helpers.h"

extern char** environ;

namespace kck::torture {

using namespace std::chrono_literals;
using kck::testing::Cluster;
using kck::testing::MustExec;
using kck::testing::Stored;
using kck::testing::Scalar;

// KCK_TORTURE_LONG=1 selects the long form.
inline bool LongForm() {
  const char* v = std::getenv("KCK_TORTURE_LONG");
  return v != nullptr && std::string(v) == "1";
}

// The run's seed: KCK_TORTURE_SEED or a fixed default, so a failure
// reproduces with the seed printed at the start of the run.
inline uint64_t Seed() {
  const char* v = std::getenv("KCK_TORTURE_SEED");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : 20240611;
}

// A generator for one test: the run's seed mixed with the test's name.
inline std::mt19937_64 TestRng() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  return std::mt19937_64(Seed() ^ std::hash<std::string>{}(name));
}

inline int Uniform(std::mt19937_64& rng, int lo, int hi) {  // inclusive
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

// Where daemon logs go: one directory per process, printed at start.
inline const std::string& LogDir() {
  static const std::string dir = [] {
    std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + std::string("/kck_torture.XXXXXX");
    return std::string(mkdtemp(tmpl.data()));
  }();
  return dir;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

// The environment of a child: ours with `env` ("NAME=value") added; an
// entry of `env` replaces ours of the same name.
inline std::vector<std::string> ChildEnv(const std::vector<std::string>& env) {
  std::vector<std::string> out = env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& mine : env) replaced = replaced || entry.substr(0, entry.find('=') + 1) == mine.substr(0, mine.find('=') + 1);
    if (!replaced) out.emplace_back(entry);
  }
  return out;
}

// Spawns `args` with `env` added to the environment and stdout/stderr
// appended to `log` (or /dev/null). Returns the pid, 0 on failure.
inline pid_t Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& log) {
  std::vector<std::string> args_copy = args, env_copy = ChildEnv(env);
  std::vector<char*> argv, envp;
  for (auto& a : args_copy) argv.push_back(a.data());
  for (auto& e : env_copy) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  std::string target = log.empty() ? "/dev/null" : log;
  posix_spawn_file_actions_addopen(&actions, 1, target.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid = 0;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// The daemons' --log-level: KCK_TORTURE_LOG_LEVEL or warn.
inline std::string DaemonLogLevel() {
  const char* v = std::getenv("KCK_TORTURE_LOG_LEVEL");
  return v != nullptr && *v != '\0' ? v : "warn";
}

// A `kck listen` child whose output goes to a log file of its own.
class Daemon {
 public:
  Daemon(const std::string& conninfo, std::string log, std::vector<std::string> extra = {},
         std::vector<std::string> env = {})
      : log_(std::move(log)) {
    std::vector<std::string> args = {KCK_BINARY, "--db", conninfo, "--log-level", DaemonLogLevel(), "listen"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = Spawn(args, env, log_);
  }
  ~Daemon() { Kill(SIGKILL); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Sends `sig` and reaps the process; returns the wait status.
  int Kill(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return status;
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  pid_t pid() const { return pid_; }
  std::string log() const { return ReadFile(log_); }
  const std::string& log_path() const { return log_; }

  // Resident set size in kB from /proc, -1 when unknown.
  long RssKb() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return -1;
  }

 private:
  std::string log_;
  pid_t pid_ = 0;
};

// The result of running the kck command to completion.
struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or could not start
  std::string output;  // stdout and stderr
  std::string err;     // stderr alone
};

// Runs `kck --db conninfo args...` and waits for it.
inline CommandResult RunKck(const std::string& conninfo, const std::vector<std::string>& args) {
  static std::atomic<int> counter{0};  // BadKeyTest runs four at a time: one file each
  std::string out = LogDir() + "/cmd-" + std::to_string(++counter) + ".out";
  std::string err = out + ".err";
  std::vector<std::string> argv = {KCK_BINARY, "--db", conninfo};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  CommandResult result;
  if (posix_spawn(&pid, KCK_BINARY, &actions, nullptr, cargv.data(), environ) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  }
  posix_spawn_file_actions_destroy(&actions);
  result.err = ReadFile(err);
  result.output = ReadFile(out) + result.err;
  unlink(out.c_str());
  unlink(err.c_str());
  return result;
}

// The test's own connections carry this application_name, so that the
// daemon's backends (application_name "kck") can be told apart.
inline std::string TestConnInfo(const std::string& conninfo) { return conninfo + " application_name=kck_torture"; }

// Opens a connection, retrying while the server restarts.
inline pg::Connection ConnectRetrying(const std::string& conninfo, std::chrono::seconds limit = 60s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto conn = pg::Connection::Open(conninfo);
    if (conn.ok()) return std::move(conn).value();
    if (std::chrono::steady_clock::now() > end) throw std::runtime_error(conn.status().message());
    std::this_thread::sleep_for(100ms);
  }
}

// ---------------------------------------------------------------- schema

// Authors 1..authors, five books and two reviews per author.
inline std::string TortureSchema(int authors) {
  std::string n = std::to_string(authors);
  return "CREATE TABLE store_author (id bigserial PRIMARY KEY, name text NOT NULL);"
         "CREATE TABLE store_book (id bigserial PRIMARY KEY, author_id bigint, title text NOT NULL,"
         "                         price numeric NOT NULL DEFAULT 10);"
         "CREATE TABLE store_review (id bigserial PRIMARY KEY, author_id bigint, stars int NOT NULL);"
         "INSERT INTO store_author (name) SELECT 'author ' || i FROM generate_series(1, " + n + ") i;"
         "INSERT INTO store_book (author_id, title) SELECT 1 + i % " + n + ", 'book ' || i"
         "  FROM generate_series(1, 5 * " + n + ") i;"
         "INSERT INTO store_review (author_id, stars) SELECT 1 + i % " + n + ", 1 + i % 5"
         "  FROM generate_series(1, 2 * " + n + ") i;";
}

// Recompute primers on two tables, per-key and global counts kept by
// augment, and a product->product rule (summary reads title_list).
inline const char* kTortureConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)", "delete": "SELECT to_jsonb((:value)::int - 1)"}}},
  {"name": "book_total", "parameters": [],
   "compute": "SELECT count(*) FROM store_book",
   "depends_on": [{"table": "store_book", "params": {}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)", "delete": "SELECT to_jsonb((:value)::int - 1)"}}},
  {"name": "review_total", "parameters": [],
   "compute": "SELECT count(*) FROM store_review",
   "depends_on": [{"table": "store_review", "params": {}}],
   "augment": {"store_review": {"insert": "SELECT to_jsonb((:value)::int + 1)", "delete": "SELECT to_jsonb((:value)::int - 1)"}}},
  {"name": "stars", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('n', count(*), 'sum', coalesce(sum(stars), 0)) FROM store_review WHERE author_id = :author_id",
   "depends_on": [{"table": "store_review", "params": {"author_id": "author_id"}}]},
  {"name": "summary", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('titles', (SELECT jsonb_array_length(value) FROM kck.cache WHERE key = 'title_list/' || :author_id))",
   "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]}
]})json";

// The keys stored up front: every per-author product of authors
// 1..authors (title_list before summary, which reads it) and both totals.
inline std::vector<std::string> TortureKeys(int authors) {
  std::vector<std::string> keys = {"book_total", "review_total"};
  for (const char* primer : {"title_list", "book_count", "stars", "summary"})
    for (int a = 1; a <= authors; ++a) keys.push_back(std::string(primer) + "/" + std::to_string(a));
  return keys;
}

// --------------------------------------------------------- python primers

// The torture's Django project (tests/torture/django): unmanaged models on
// the torture's tables and the Python primers py_titles (recomputed),
// py_book_count and py_review_total (augmented), registered by its `manage.py kck_sync` and
// computed by its `manage.py kck_worker`.
inline std::string TortureManagePy() { return std::string(KCK_SOURCE_DIR) + "/tests/torture/django/torture_manage.py"; }

// The --python-worker command of every daemon the torture starts.
inline std::string PythonWorkerCommand() { return "exec /usr/bin/python3 " + TortureManagePy() + " kck_worker"; }

// The environment the Django project reads: the database (its backends
// carry application_name kck_torture_worker) and the kck binary.
inline std::vector<std::string> DjangoEnv(const std::string& conninfo) {
  return {"KCK_TORTURE_DB=" + conninfo + " application_name=kck_torture_worker", std::string("KCK_BINARY=") + KCK_BINARY,
          "DJANGO_SETTINGS_MODULE=torture_settings"};
}

// Runs `args` with `env` added, stdin from the file `in` ("" for
// /dev/null), stdout to the file `out` and stderr appended to `log`, and
// waits for it, killing it after `limit`. Returns the exit code, -1 when
// it could not start, was killed or timed out.
inline int RunWaiting(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& in,
                      const std::string& out, const std::string& log, std::chrono::seconds limit) {
  std::vector<std::string> args_copy = args, env_copy = ChildEnv(env);
  std::vector<char*> argv, envp;
  for (auto& a : args_copy) argv.push_back(a.data());
  for (auto& e : env_copy) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return -1;
  auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(20ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs `manage.py <args>` of the torture's Django project on the database
// of `conninfo`; returns the exit code and the output.
inline CommandResult RunManagePy(const std::string& conninfo, const std::vector<std::string>& args) {
  static int counter = 0;
  std::string out = LogDir() + "/manage-" + std::to_string(++counter) + ".out";
  std::vector<std::string> argv = {"/usr/bin/python3", TortureManagePy()};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult result;
  result.exit_code = RunWaiting(argv, DjangoEnv(conninfo), "", out, out, 120s);
  result.output = ReadFile(out);
  return result;
}

// Fresh computes of `keys` by a new `manage.py kck_worker`, through the
// worker protocol the daemon speaks (one compute request per key; the
// worker exits at the end of its input): key -> reply object. On failure
// `error` says why and the map holds what was answered.
inline std::map<std::string, nlohmann::json> WorkerComputes(const std::string& conninfo,
                                                            const std::vector<std::string>& keys, std::string& error) {
  static int counter = 0;
  std::string base = LogDir() + "/oracle-worker-" + std::to_string(++counter);
  {
    std::ofstream requests(base + ".in");
    for (size_t i = 0; i < keys.size(); ++i)
      requests << nlohmann::json{{"id", i + 1}, {"op", "compute"}, {"key", keys[i]}}.dump() << "\n";
  }
  std::vector<std::string> argv = {"/usr/bin/python3", TortureManagePy(), "kck_worker"};
  int code = RunWaiting(argv, DjangoEnv(conninfo), base + ".in", base + ".out", base + ".log", 120s);
  std::map<std::string, nlohmann::json> replies;
  std::istringstream lines(ReadFile(base + ".out"));
  for (std::string line; std::getline(lines, line);) {
    auto reply = nlohmann::json::parse(line, nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) { error = "the oracle's worker wrote a line that is not a JSON object: " + line.substr(0, 200); continue; }
    if (!reply.contains("id")) continue;  // the hello
    size_t id = reply["id"].is_number_unsigned() ? reply["id"].get<size_t>() : 0;
    if (id == 0 || id > keys.size()) { error = "the oracle's worker answered an unknown id: " + line.substr(0, 200); continue; }
    replies[keys[id - 1]] = reply;
  }
  if (code != 0) error = "the oracle's worker exited with " + std::to_string(code) + ": " + Tail(ReadFile(base + ".log"), 10);
  else if (replies.size() != keys.size()) error = "the oracle's worker answered " + std::to_string(replies.size()) + " of " + std::to_string(keys.size()) + " requests";
  return replies;
}

// Processes of this user whose environment holds an entry starting with
// `prefix` (the daemons tag their own with KCK_TORTURE_TAG, and the
// worker each starts inherits it).
inline std::vector<pid_t> PidsWithEnv(const std::string& prefix) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (pid <= 0 || pid == getpid()) continue;
    std::string env = ReadFile("/proc/" + std::to_string(pid) + "/environ");
    for (size_t pos = 0; pos < env.size(); pos = env.find('\0', pos) + 1) {
      if (env.compare(pos, prefix.size(), prefix) == 0) { out.push_back(pid); break; }
      if (env.find('\0', pos) == std::string::npos) break;
    }
  }
  closedir(proc);
  return out;
}

// The command line of a process, spaces between arguments.
inline std::string CommandLine(pid_t pid) {
  std::string cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& c : cmd) if (c == '\0') c = ' ';
  return cmd;
}

// ---------------------------------------------------------------- oracle

// The daemons' backends in this database (the test's own connections
// carry another application_name).
inline const char* kDaemonBackendsSql =
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kck'"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid";

// The same and the backends of the daemons' Python workers: pid, application_name.
inline const char* kDaemonAndWorkerBackendsSql =
    "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name IN ('kck', 'kck_torture_worker') AND backend_type = 'client backend'"
    " AND pid <> pg_backend_pid() ORDER BY pid";

// True when the outbox is empty and no daemon backend is inside a
// transaction, twice in a row 100 ms apart.
inline bool Quiet(pg::Connection& conn) {
  const std::string sql =
      "SELECT (SELECT count(*) FROM kck.changes) = 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity"
      " WHERE datname = current_database() AND application_name = 'kck' AND pid <> pg_backend_pid()"
      " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)'))";
  if (Scalar(conn, sql) != "t") return false;
  std::this_thread::sleep_for(100ms);
  return Scalar(conn, sql) == "t";
}

// What the outbox and the daemons are doing, for a failure message.
inline std::string OutboxReport(pg::Connection& conn) {
  return "outbox depth " + Scalar(conn, "SELECT count(*) FROM kck.changes") + ", oldest change " +
         Scalar(conn, "SELECT row_to_json(c)::text FROM (SELECT id, tbl, op, left(coalesce(new, old)::text, 200) AS image,"
                      " now() - at AS age FROM kck.changes ORDER BY id LIMIT 1) c") +
         ", daemon backends " +
         Scalar(conn, "SELECT coalesce(json_agg(json_build_object('pid', pid, 'state', state, 'query', left(query, 120)))::text, '[]')"
                      " FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kck'");
}

// Waits until Quiet(), reconnecting `conn` if the server went away.
inline bool WaitQuiet(pg::Connection& conn, const std::string& conninfo, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (PQstatus(conn.raw()) != CONNECTION_OK) conn = ConnectRetrying(conninfo);
    if (Quiet(conn)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// Every stored product whose value differs from a recompute from scratch
// (the oracle of daemon_helpers.h, collected instead of asserted one by
// one), or that carries an error. Each line names the key. Python
// products are computed afresh by a kck_worker of the torture's Django
// project on the database of `worker_conninfo` ("": none may be stored).
inline std::vector<std::string> OracleMismatches(pg::Connection& conn, const std::string& worker_conninfo = "") {
  std::vector<std::string> out;
  std::vector<std::string> python_keys, python_stored;
  auto registry = LoadRegistry(conn);
  if (!registry.ok()) return {"cannot load registry: " + registry.status().message()};
  auto rows = conn.Exec("SELECT key, primer, value::text, error FROM kck.cache ORDER BY key");
  if (!rows.ok()) return {"cannot read kck.cache: " + rows.status().message()};
  for (int i = 0; i < rows->rows(); ++i) {
    std::string key(rows->get(i, 0));
    const Primer* p = (*registry)->Find(rows->get(i, 1));
    if (p == nullptr) continue;  // a primer a test dropped on purpose
    auto values = DecodeKey(key, p->spec.name, p->spec.params);
    if (!values.ok()) { out.push_back(key + ": stored under an undecodable key"); continue; }
    if (!rows->is_null(i, 3)) out.push_back(key + ": carries error \"" + std::string(rows->get(i, 3)) + "\"");
    if (p->python()) {
      python_keys.push_back(key);
      python_stored.emplace_back(rows->get(i, 2));
      continue;
    }
    auto fresh = conn.Exec(p->compute.sql, BindValues(p->compute, p->KeyValues(*values)));
    std::string fresh_text = fresh.ok() ? fresh->get_opt(0, 0).value_or("null") : "<" + fresh.status().message() + ">";
    std::string same = fresh.ok() ? Scalar(conn, "SELECT $1::jsonb = $2::jsonb", {std::string(rows->get(i, 2)), fresh_text}) : "f";
    if (same != "t") out.push_back(key + ": stored " + std::string(rows->get(i, 2)).substr(0, 200) + " but recompute gives " + fresh_text.substr(0, 200));
  }
  if (python_keys.empty()) return out;
  if (worker_conninfo.empty()) return {"python products are stored but the oracle has no kck_worker to compute them"};
  std::string error;
  auto replies = WorkerComputes(worker_conninfo, python_keys, error);
  if (!error.empty()) out.push_back("kck_worker (oracle): " + error);
  for (size_t i = 0; i < python_keys.size(); ++i) {
    auto reply = replies.find(python_keys[i]);
    if (reply == replies.end()) continue;
    if (!reply->second.value("ok", false)) {
      out.push_back(python_keys[i] + ": the oracle's kck_worker failed to compute it: " + reply->second.dump().substr(0, 200));
      continue;
    }
    std::string fresh = reply->second["value"].dump();
    if (Scalar(conn, "SELECT $1::jsonb = $2::jsonb", {python_stored[i], fresh}) != "t")
      out.push_back(python_keys[i] + ": stored " + python_stored[i].substr(0, 200) + " but a fresh compute by kck_worker gives " + fresh.substr(0, 200));
  }
  return out;
}

inline std::string JoinFirst(const std::vector<std::string>& lines, size_t n) {
  std::string s;
  for (size_t i = 0; i < lines.size() && i < n; ++i) s += "\n  " + lines[i];
  if (lines.size() > n) s += "\n  ... and " + std::to_string(lines.size() - n) + " more";
  return s;
}

// Mismatch lines grouped by primer (the text before the first '/' or
// ':'), a count and the first examples of each, so one broken primer
// does not hide another.
inline std::string ByPrimer(const std::vector<std::string>& lines, size_t examples = 3) {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& line : lines) groups[line.substr(0, line.find_first_of("/:"))].push_back(line);
  std::string s;
  for (const auto& [primer, group] : groups)
    s += "\n [" + primer + "] " + std::to_string(group.size()) + " lines:" + JoinFirst(group, examples);
  return s;
}

// The counts kept by augment against the real counts: exactly once means
// equal, not close.
inline std::vector<std::string> AugmentCountMismatches(pg::Connection& conn) {
  std::vector<std::string> out;
  const std::pair<const char*, const char*> counts[] = {{"book_total", "store_book"}, {"review_total", "store_review"}, {"py_review_total", "store_review"}};
  for (auto [key, table] : counts) {
    std::string stored = Stored(conn, key);
    if (stored == "<absent>") continue;  // not part of this test's schema
    std::string real = Scalar(conn, std::string("SELECT count(*) FROM ") + table);
    if (stored != real) out.push_back(std::string(key) + " (kept by augment): stored " + stored + ", real count " + real);
  }
  for (const char* primer : {"book_count", "py_book_count"}) {
    std::string wrong = Scalar(conn,
        "SELECT count(*) || ' authors differ from the real count' || coalesce(': ' || string_agg(format('%s stored %s, real count %s', key, value, real), '; ')"
        "   FILTER (WHERE n <= 5), '') FROM (SELECT key, value, real, row_number() OVER (ORDER BY key) n"
        " FROM (SELECT c.key, c.value, (SELECT count(*) FROM store_book b WHERE b.author_id = split_part(c.key, '/', 2)::bigint) real"
        " FROM kck.cache c WHERE c.primer = $1) k WHERE value <> to_jsonb(real)) w", {primer});
    if (wrong.rfind("0 ", 0) != 0) out.push_back(std::string(primer) + " (kept by augment): " + wrong);
  }
  return out;
}

// Asserts the end state of a drain: empty outbox, cache equal to a
// recompute, augment counts exact. `what` names the phase.
// `worker_conninfo`: as for OracleMismatches().
inline void ExpectConsistent(pg::Connection& conn, const std::string& what, const std::string& worker_conninfo = "") {
  auto mismatches = OracleMismatches(conn, worker_conninfo);
  EXPECT_TRUE(mismatches.empty()) << what << ": " << mismatches.size()
                                  << " mismatches against a recompute from scratch:" << ByPrimer(mismatches);
  auto counts = AugmentCountMismatches(conn);
  EXPECT_TRUE(counts.empty()) << what << ": augment not applied exactly once:" << JoinFirst(counts, 8);
  EXPECT_EQ(Scalar(conn, "SELECT count(*) FROM kck.changes"), "0") << what << ": outbox not empty";
}

// Stores `keys` through the library (a read miss computes and stores).
inline void PrimeKeys(pg::Connection& conn, const std::vector<std::string>& keys) { kck::testing::Prime(conn, keys); }

}  // namespace kck::torture
