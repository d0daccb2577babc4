// kck: parse the command line and hand over to cli/commands.cc.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <unistd.h>

#include "cli/commands.h"
#include "common/log_format.h"

namespace {

namespace cli = kck::cli;

// Every option of every subcommand, and the subcommands themselves.
struct Args {
  cli::Global g;
  std::string log_level = "info", log_format = "text";
  std::string config, key;
  cli::ListenArgs listen_args;
  std::vector<std::string> keys;
  bool dry_run = false, drop_data = false, json = false, django = false, watch = false;
  double interval = 2.0;
  int jobs = 2;
  CLI::App *install, *uninstall, *listen, *get, *refresh, *warm, *status, *explain, *demo;
};

// Global options (--db, --log-level, --log-format) are accepted after the subcommand too.
void DefineGlobal(CLI::App& app, Args& a) {
  app.set_version_flag("--version", std::string(KCK_VERSION));
  app.require_subcommand(1);
  app.fallthrough();
  if (const char* url = std::getenv("KCK_DATABASE_URL")) a.g.db = url;
  app.add_option("--db", a.g.db, "libpq connection string or URI (default: $KCK_DATABASE_URL)");
  app.add_option("--log-level", a.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", a.log_format, "text (for people) or json (one object per line, for log shippers)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

void DefineSchemaCommands(CLI::App& app, Args& a) {
  a.install = app.add_subcommand("install", "create or migrate the schema, register primers, install triggers");
  a.install->add_option("--config", a.config, "primer config (JSON)")->required();
  a.install->add_flag("--dry-run", a.dry_run, "print the SQL and change nothing");
  a.uninstall = app.add_subcommand("uninstall", "remove every capture trigger kck installed");
  a.uninstall->add_flag("--drop-data", a.drop_data, "also drop the kck schema and all products");
  a.uninstall->add_flag("--dry-run", a.dry_run, "print the SQL and change nothing");
}

void DefineListen(CLI::App& app, Args& a) {
  a.listen = app.add_subcommand("listen", "run the daemon");
  cli::ListenArgs& l = a.listen_args;
  a.listen->add_option("--python-worker", l.python_worker, "command that starts manage.py kck_worker");
  a.listen->add_option("--batch", l.batch, "changes claimed per transaction")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  a.listen->add_option("--worker-timeout", l.worker_timeout, "longest a python compute may take (90s, 2m, ...)")
      ->capture_default_str();
  a.listen->add_option("--compute-timeout", l.compute_timeout, "statement_timeout of SQL computes (90s, 2m, ...)")
      ->capture_default_str();
  a.listen->add_flag("--until-idle", l.until_idle, "apply every pending change, then exit 0 (1 on a failure)");
  // A function, so that an empty address is told from none and rejected.
  a.listen->add_option_function<std::string>(
      "--metrics", [&l](const std::string& address) { l.metrics = address; },
      "serve Prometheus metrics on HOST:PORT, e.g. 127.0.0.1:9187");
}

void DefineProductCommands(CLI::App& app, Args& a) {
  a.get = app.add_subcommand("get", "print a product (computed and stored on a miss)");
  a.get->add_option("key", a.key, "e.g. title_list/5")->required();
  a.refresh = app.add_subcommand("refresh", "recompute products now");
  a.refresh->add_option("keys", a.keys, "keys")->required();
  a.warm = app.add_subcommand("warm", "compute the products primers' warm SQL lists that are not stored yet");
  a.warm->add_option("primers", a.keys, "primers to warm (default: every primer with warm SQL)");
  a.warm->add_option("--jobs", a.jobs, "products computed at a time")->check(CLI::Range(1, 64))->capture_default_str();
  a.explain = app.add_subcommand("explain", "why a product is what it is: rules, version, pending changes, dependents");
  a.explain->add_option("key", a.key, "e.g. title_list/5")->required();
  a.explain->add_flag("--json", a.json, "machine-readable output");
}

void DefineStatusAndDemo(CLI::App& app, Args& a) {
  a.status = app.add_subcommand("status", "outbox, daemons and their last minute, products per primer, errors");
  a.status->add_flag("--json", a.json, "machine-readable output");
  CLI::Option* watch = a.status->add_flag("--watch", a.watch, "refresh in place until interrupted");
  a.status->add_option("--interval", a.interval, "seconds between refreshes with --watch")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str()
      ->needs(watch);
  a.demo = app.add_subcommand("demo", "the bookstore example on a throwaway PostgreSQL cluster");
  a.demo->add_flag("--django", a.django, "run the Django example project instead");
}

std::string SelfPath(const char* argv0) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  return n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv0);
}

int Dispatch(const Args& a, const char* argv0) {
  if (*a.install) return cli::Install(a.g, a.config, a.dry_run);
  if (*a.uninstall) return cli::Uninstall(a.g, a.drop_data, a.dry_run);
  if (*a.listen) return cli::Listen(a.g, a.listen_args);
  if (*a.get) return cli::Get(a.g, a.key);
  if (*a.explain) return cli::ExplainCmd(a.g, a.key, a.json);
  if (*a.refresh) return cli::Refresh(a.g, a.keys);
  if (*a.warm) return cli::Warm(a.g, a.keys, a.jobs);
  if (*a.status) return cli::StatusCmd(a.g, a.json, a.watch, a.interval);
  if (*a.demo) return cli::Demo(a.g, a.django, SelfPath(argv0));
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kck keeps derived data fresh inside PostgreSQL"};
  Args a;
  DefineGlobal(app, a);
  DefineSchemaCommands(app, a);
  DefineListen(app, a);
  DefineProductCommands(app, a);
  DefineStatusAndDemo(app, a);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "kck: %s\n", e.what());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(a.log_level));
  kck::SetLogFormat(a.log_format);
  return Dispatch(a, argv[0]);
}
