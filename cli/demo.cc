// kck demo: the bookstore on a throwaway cluster, step by step, with the
// time from each commit to a fresh product.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli/commands.h"
#include "pg/cluster.h"
#include "pg/connection.h"
#include "primers/config.h"
#include "primers/products.h"
#include "sql/embedded.h"
#include "triggers/installer.h"

extern char** environ;

namespace kck::cli {
namespace {

using Clock = std::chrono::steady_clock;

long long Version(pg::Connection& conn, const std::string& key) {
  auto r = conn.Exec("SELECT version FROM kck.cache WHERE key = $1", {key});
  return (r.ok() && r->rows() == 1) ? std::stoll(std::string(r->get(0, 0))) : 0;
}

std::string Value(pg::Connection& conn, const std::string& key) {
  auto r = conn.Exec("SELECT value::text FROM kck.cache WHERE key = $1", {key});
  return (r.ok() && r->rows() == 1) ? std::string(r->get(0, 0)) : "(not stored)";
}

struct Step {
  const char* what;
  const char* sql;
  std::vector<std::string> keys;
};

}  // namespace

// Runs a program and waits; returns its exit code (-1 if it could not run).
int RunAndWait(const std::vector<std::string>& args, pid_t* background = nullptr) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  if (background) {
    *background = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The Django example (examples/bookstore_django) on the same kind of
// throwaway cluster: migrate (which runs kck_sync), seed, kck listen with
// the Python worker, then ORM writes with their commit-to-fresh times.
int DjangoDemo(const std::string& conninfo, const std::string& self_path) {
  const char* dir_env = std::getenv("KCK_DJANGO_EXAMPLE");
  std::string dir = dir_env ? dir_env : std::string(KCK_SOURCE_DIR) + "/examples/bookstore_django";
  std::string manage = dir + "/manage.py";
  if (access(manage.c_str(), R_OK) != 0) {
    return Fail(Status::Invalid("cannot find " + manage + " (set KCK_DJANGO_EXAMPLE to the example's directory)"));
  }
  setenv("KCK_DATABASE_URL", conninfo.c_str(), 1);
  setenv("KCK_BINARY", self_path.c_str(), 1);
  const std::string python = "/usr/bin/python3";
  std::printf("\n$ manage.py migrate   (creates the tables; kck_sync registers the primers and installs triggers)\n");
  std::fflush(stdout);
  if (RunAndWait({python, manage, "migrate", "-v", "0"}) != 0) return Fail(Status::Runtime("manage.py migrate failed"));
  if (RunAndWait({python, manage, "bookstore_seed"}) != 0) return Fail(Status::Runtime("manage.py bookstore_seed failed"));
  pid_t daemon = 0;
  std::string worker = "exec " + python + " " + manage + " kck_worker";
  RunAndWait({self_path, "--db", conninfo, "--log-level", "warn", "listen", "--python-worker", worker}, &daemon);
  std::printf("started kck listen --python-worker (pid %d)\n\n", daemon);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the worker imports Django
  int rc = RunAndWait({python, manage, "bookstore_demo"});
  kill(daemon, SIGTERM);
  int wstatus = 0;
  waitpid(daemon, &wstatus, 0);
  std::printf("\nkck listen stopped (%s)\n", WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 ? "clean exit" : "FAILED");
  Global status_g{conninfo};
  std::printf("\nkck status:\n");
  StatusCmd(status_g, false, false, 0);
  return rc == 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 ? 0 : 1;
}

namespace {

// Creates the bookstore, installs its primers and reads a few products
// (a miss computes and stores them).
Status SetUpBookstore(pg::Connection& conn) {
  auto exists = conn.Exec("SELECT to_regclass('store_author') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->get(0, 0) == "t") {
    return Status::Invalid("the database already has a store_author table; kck demo wants an empty database");
  }
  Status s = conn.ExecScript(sql::File("bookstore/schema.sql"));
  if (!s.ok()) return s.WithContext("creating the bookstore");
  auto config = ParseConfig(sql::File("bookstore/primers.json"), "examples/bookstore/primers.json");
  if (!config.ok()) return config.status();
  auto report = Install(conn, *config, false);
  if (!report.ok()) return report.status();
  std::printf("kck install:\n");
  for (const auto& line : report->lines) std::printf("  %s\n", line.c_str());
  auto registry = LoadRegistry(conn);
  if (!registry.ok()) return registry.status();
  Products products(conn, *registry);
  std::printf("\nreading products (a miss computes and stores them):\n");
  for (const char* key : {"title_list/1", "title_list/2", "author_stats/1", "top_books/3"}) {
    auto v = products.Get(key);
    if (!v.ok()) return v.status();
    std::printf("  %-16s %s\n", key, v->c_str());
  }
  return Status::Ok();
}

// Runs one write and waits for each of its keys to get a new version;
// false when one was not refreshed within 5 s.
bool RunStep(pg::Connection& conn, const Step& step, Status* failed) {
  std::printf("\n== %s\n   %s\n", step.what, step.sql);
  std::vector<long long> before;
  for (const auto& k : step.keys) {
    before.push_back(Version(conn, k));
    std::printf("   before %-16s v%lld %s\n", k.c_str(), before.back(), Value(conn, k).c_str());
  }
  *failed = conn.ExecScript(step.sql);
  auto committed = Clock::now();
  if (!failed->ok()) return false;
  bool fresh = true;
  for (size_t i = 0; i < step.keys.size(); ++i) {
    long long v = before[i];
    while (v == before[i] && Clock::now() - committed < std::chrono::seconds(5)) {
      v = Version(conn, step.keys[i]);
      if (v == before[i]) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - committed).count();
    if (v == before[i]) {
      std::printf("   after  %-16s NOT refreshed within 5 s\n", step.keys[i].c_str());
      fresh = false;
      continue;
    }
    std::printf("   after  %-16s v%lld %s  (fresh %.2f ms after commit)\n", step.keys[i].c_str(), v,
                Value(conn, step.keys[i]).c_str(), ms);
  }
  return fresh;
}

const std::vector<Step>& DemoSteps() {
  static const std::vector<Step> steps = {
      {"insert a book by Le Guin (augmented in place)",
       "INSERT INTO store_book (author_id, title, published) VALUES (1, 'The Lathe of Heaven', '1971-03-01')",
       {"title_list/1", "author_stats/1"}},
      {"rename a book", "UPDATE store_book SET title = 'Earthsea' WHERE id = 1", {"title_list/1"}},
      {"move a book from author 1 to author 2", "UPDATE store_book SET author_id = 2 WHERE id = 3",
       {"title_list/1", "title_list/2"}},
      {"add a one-star review of Kindred", "INSERT INTO store_review (book_id, rating) VALUES (6, 1)",
       {"top_books/3"}},
      {"delete a book (and its reviews)", "DELETE FROM store_book WHERE id = 3", {"title_list/2", "top_books/3"}},
  };
  return steps;
}

}  // namespace

int Demo(const Global& g, bool django, const std::string& self_path) {
  std::unique_ptr<pg::TempCluster> cluster;
  std::string conninfo = g.db;
  if (conninfo.empty()) {
    std::printf("starting a throwaway PostgreSQL cluster...\n");
    auto started = pg::TempCluster::Start({});
    if (!started.ok()) return Fail(started.status());
    cluster = std::move(*started);
    conninfo = cluster->ConnInfo();
  }
  if (django) return DjangoDemo(conninfo, self_path);
  auto conn = pg::Connection::Open(conninfo);
  if (!conn.ok()) return Fail(conn.status());
  Status set_up = SetUpBookstore(*conn);
  if (!set_up.ok()) return Fail(set_up);

  // The daemon, as its own process, exactly as systemd would run it.
  std::string db_arg = conninfo;
  const char* argv[] = {self_path.c_str(), "--db", db_arg.c_str(), "--log-level", "warn", "listen", nullptr};
  pid_t daemon = 0;
  if (posix_spawn(&daemon, self_path.c_str(), nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    return Fail(Status::Runtime("cannot start kck listen"));
  }
  std::printf("\nstarted kck listen (pid %d)\n", daemon);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int rc = 0;
  for (const auto& step : DemoSteps()) {
    Status failed;
    if (!RunStep(*conn, step, &failed)) rc = 1;
    if (!failed.ok()) return Fail(failed);
  }
  kill(daemon, SIGTERM);
  int wstatus = 0;
  waitpid(daemon, &wstatus, 0);
  const bool clean = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
  std::printf("\nkck listen stopped (%s)\n", clean ? "clean exit" : "FAILED");
  if (!clean) rc = 1;
  std::printf("\nkck status:\n");
  Global status_g{conninfo};
  StatusCmd(status_g, false, false, 0);
  if (cluster) std::printf("\nremoving the throwaway cluster\n");
  return rc;
}

}  // namespace kck::cli
