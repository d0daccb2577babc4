// kck: parse the command line and hand over to cli/commands.cc.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <unistd.h>

#include "cli/commands.h"
#include "common/log_format.h"

int main(int argc, char** argv) {
  CLI::App app{"kck keeps derived data fresh inside PostgreSQL"};
  app.set_version_flag("--version", std::string(KCK_VERSION));
  app.require_subcommand(1);
  // Global options (--db, --log-level, --log-format) are accepted after the subcommand too.
  app.fallthrough();
  kck::cli::Global g;
  if (const char* url = std::getenv("KCK_DATABASE_URL")) g.db = url;
  app.add_option("--db", g.db, "libpq connection string or URI (default: $KCK_DATABASE_URL)");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text (for people) or json (one object per line, for log shippers)")
      ->check(CLI::IsMember({"text", "json"}));

  std::string config;
  bool dry_run = false, drop_data = false, json = false, django = false;
  auto* install = app.add_subcommand("install", "create or migrate the schema, register primers, install triggers");
  install->add_option("--config", config, "primer config (JSON)")->required();
  install->add_flag("--dry-run", dry_run, "print the SQL and change nothing");

  auto* uninstall = app.add_subcommand("uninstall", "remove every capture trigger kck installed");
  uninstall->add_flag("--drop-data", drop_data, "also drop the kck schema and all products");
  uninstall->add_flag("--dry-run", dry_run, "print the SQL and change nothing");

  std::string python_worker, worker_timeout = "30s", compute_timeout = "30s";
  int batch = 5000;
  bool until_idle = false;
  auto* listen = app.add_subcommand("listen", "run the daemon");
  listen->add_option("--python-worker", python_worker, "command that starts manage.py kck_worker");
  listen->add_option("--batch", batch, "changes claimed per transaction")->check(CLI::Range(1, 100000));
  listen->add_option("--worker-timeout", worker_timeout, "longest a python compute may take (e.g. 30s)");
  listen->add_option("--compute-timeout", compute_timeout, "statement_timeout of SQL computes (e.g. 30s)");
  listen->add_flag("--until-idle", until_idle, "apply every pending change, then exit 0 (1 on a failure)");

  std::string key;
  auto* get = app.add_subcommand("get", "print a product (computed and stored on a miss)");
  get->add_option("key", key, "e.g. title_list/5")->required();

  std::vector<std::string> keys;
  auto* refresh = app.add_subcommand("refresh", "recompute products now");
  refresh->add_option("keys", keys, "keys")->required();

  bool watch = false;
  double interval = 2.0;
  auto* status = app.add_subcommand("status", "outbox, daemons and their last minute, products per primer, errors");
  status->add_flag("--json", json, "machine-readable output");
  status->add_flag("--watch", watch, "refresh in place until interrupted");
  status->add_option("--interval", interval, "seconds between refreshes with --watch (default 2)")
      ->check(CLI::Range(0.1, 3600.0));

  auto* explain = app.add_subcommand("explain", "why a product is what it is: rules, version, pending changes, dependents");
  explain->add_option("key", key, "e.g. title_list/5")->required();
  explain->add_flag("--json", json, "machine-readable output");

  auto* demo = app.add_subcommand("demo", "the bookstore example on a throwaway PostgreSQL cluster");
  demo->add_flag("--django", django, "run the Django example project instead");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "kck: %s\n", e.what());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  kck::SetLogFormat(log_format);

  namespace cli = kck::cli;
  if (*install) return cli::Install(g, config, dry_run);
  if (*uninstall) return cli::Uninstall(g, drop_data, dry_run);
  if (*listen) return cli::Listen(g, python_worker, batch, worker_timeout, compute_timeout, until_idle);
  if (*get) return cli::Get(g, key);
  if (*explain) return cli::ExplainCmd(g, key, json);
  if (*refresh) return cli::Refresh(g, keys);
  if (*status) return cli::StatusCmd(g, json, watch, interval);
  if (*demo) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string path = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv[0]);
    return cli::Demo(g, django, path);
  }
  return 2;
}
