#include "cli/commands.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "listener/daemon.h"
#include "pg/connection.h"
#include "primers/period.h"
#include "primers/products.h"
#include "sql/embedded.h"
#include "triggers/installer.h"

namespace kck::cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "kck: %s\n", status.message().c_str());
  return status.kind() == Status::Kind::kInvalid ? 2 : 1;
}

StatusOr<pg::Connection> Connect(const Global& g) {
  if (g.db.empty()) return Status::Invalid("no database: pass --db CONNINFO or set KCK_DATABASE_URL");
  return pg::Connection::Open(g.db);
}

namespace {

StatusOr<std::string> ReadFile(const std::string& path) {
  if (path == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path);
  if (!in) return Status::Invalid("cannot read config file \"" + path + "\"");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void PrintReport(const InstallReport& report, bool dry_run) {
  if (dry_run) {
    std::fputs(report.sql.c_str(), stdout);
    std::printf("-- dry run: nothing was changed\n");
    return;
  }
  for (const auto& line : report.lines) std::printf("%s\n", line.c_str());
  if (!report.changed) std::printf("nothing to change\n");
}

// The rows of kck.registry_problems(): registered primers that no longer
// match the catalog. Empty on a schema that predates the function.

}  // namespace

int Install(const Global& g, const std::string& config_path, bool dry_run) {
  auto text = ReadFile(config_path);
  if (!text.ok()) return Fail(text.status());
  auto config = ParseConfig(*text, config_path);
  if (!config.ok()) return Fail(config.status());
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto report = kck::Install(*conn, *config, dry_run);
  if (!report.ok()) return Fail(report.status().WithContext(config_path));
  PrintReport(*report, dry_run);
  return 0;
}

int Uninstall(const Global& g, bool drop_data, bool dry_run) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto report = kck::Uninstall(*conn, drop_data, dry_run);
  if (!report.ok()) return Fail(report.status());
  PrintReport(*report, dry_run);
  return 0;
}

int Listen(const Global& g, const ListenArgs& args) {
  if (g.db.empty()) return Fail(Status::Invalid("no database: pass --db CONNINFO or set KCK_DATABASE_URL"));
  Status conninfo = pg::CheckConninfo(g.db);
  if (!conninfo.ok()) return Fail(conninfo);
  DaemonOptions opts;
  opts.conninfo = g.db;
  opts.batch = args.batch;
  opts.python_worker = args.python_worker;
  opts.until_idle = args.until_idle;
  auto wt = ParsePeriod(args.worker_timeout);
  if (!wt.ok()) return Fail(wt.status().WithContext("--worker-timeout"));
  auto ct = ParsePeriod(args.compute_timeout);
  if (!ct.ok()) return Fail(ct.status().WithContext("--compute-timeout"));
  if (args.metrics) {
    auto addr = ParseListenAddress(*args.metrics);
    if (!addr.ok()) return Fail(addr.status());
    opts.metrics_address = *args.metrics;
  }
  opts.worker_timeout = *wt;
  opts.compute_timeout = *ct;
  Daemon daemon(opts);
  Status metrics = daemon.StartMetrics();  // a port in use fails before the start is logged
  if (!metrics.ok()) return Fail(metrics);
  spdlog::info("kck {} {} (batch {}{})", KCK_VERSION, args.until_idle ? "applying pending changes" : "listening",
               args.batch, args.python_worker.empty() ? "" : ", python worker \"" + args.python_worker + "\"");
  return daemon.Run();
}

int Get(const Global& g, const std::string& key) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto registry = LoadRegistry(*conn);
  if (!registry.ok()) return Fail(registry.status());
  Products products(*conn, *registry);
  auto value = products.Get(key);
  if (!value.ok()) return Fail(value.status());
  std::printf("%s\n", value->c_str());
  return 0;
}

int Refresh(const Global& g, const std::vector<std::string>& keys) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto registry = LoadRegistry(*conn);
  if (!registry.ok()) return Fail(registry.status());
  Products products(*conn, *registry);
  for (const auto& key : keys) {
    Status valid = products.Check(key);
    if (!valid.ok()) return Fail(valid);
  }
  int rc = 0;
  for (const auto& key : keys) {
    auto version = products.Refresh(key);
    if (!version.ok()) {
      rc = std::max(rc, Fail(version.status()));
      continue;
    }
    std::printf("%s: version %lld\n", key.c_str(), *version);
  }
  return rc;
}




}  // namespace kck::cli
