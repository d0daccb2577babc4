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
StatusOr<nlohmann::json> RegistryProblems(pg::Connection& conn) {
  auto exists = conn.Exec("SELECT to_regprocedure('kck.registry_problems()') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  nlohmann::json out = nlohmann::json::array();
  if (exists->get(0, 0) != "t") return out;
  auto rows = conn.Exec("SELECT primer, problem, hint FROM kck.registry_problems()");
  if (!rows.ok()) return rows.status().WithContext("kck.registry_problems()");
  for (int i = 0; i < rows->rows(); ++i) {
    out.push_back({{"primer", rows->get(i, 0)}, {"problem", rows->get(i, 1)}, {"hint", rows->get(i, 2)}});
  }
  return out;
}

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

int Listen(const Global& g, const std::string& python_worker, int batch, const std::string& worker_timeout,
           const std::string& compute_timeout, bool until_idle) {
  if (g.db.empty()) return Fail(Status::Invalid("no database: pass --db CONNINFO or set KCK_DATABASE_URL"));
  DaemonOptions opts;
  opts.conninfo = g.db;
  opts.batch = batch;
  opts.python_worker = python_worker;
  opts.until_idle = until_idle;
  auto wt = ParsePeriod(worker_timeout);
  if (!wt.ok()) return Fail(wt.status().WithContext("--worker-timeout"));
  auto ct = ParsePeriod(compute_timeout);
  if (!ct.ok()) return Fail(ct.status().WithContext("--compute-timeout"));
  opts.worker_timeout = *wt;
  opts.compute_timeout = *ct;
  spdlog::info("kck {} {} (batch {}{})", KCK_VERSION, until_idle ? "applying pending changes" : "listening", batch,
               python_worker.empty() ? "" : ", python worker \"" + python_worker + "\"");
  Daemon daemon(opts);
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

// The outbox (sql/status_outbox.sql).
StatusOr<nlohmann::json> OutboxState(pg::Connection& conn) {
  auto r = conn.Exec(std::string(sql::File("status_outbox.sql")));
  if (!r.ok()) return r.status().WithContext("reading kck.changes (did kck install run?)");
  return nlohmann::json{{"depth", std::stoll(std::string(r->get(0, 0)))},
                        {"depth_exact", true},
                        {"oldest_age_s", std::stod(std::string(r->get(0, 1)))},
                        {"bytes", r->is_null(0, 2) ? 0LL : std::stoll(std::string(r->get(0, 2)))},
                        {"claimed", std::stoll(std::string(r->get(0, 3)))},
                        {"batches_in_flight", std::stoll(std::string(r->get(0, 4)))}};
}

// Daemons connected now, and whether writers wake them (one may be
// waiting: sql/006_wake_flag.sql).
StatusOr<nlohmann::json> DaemonsState(pg::Connection& conn) {
  auto r = conn.Exec(
      "SELECT count(*), kck.must_notify() FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id");
  if (!r.ok()) return r.status();
  return nlohmann::json{{"connected", std::stoll(std::string(r->get(0, 0)))},
                        {"writers_notify", r->get(0, 1) == "t"}};
}

int StatusCmd(const Global& g, bool json) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  auto outbox = OutboxState(*conn);
  if (!outbox.ok()) return Fail(outbox.status());
  auto daemons = DaemonsState(*conn);
  if (!daemons.ok()) return Fail(daemons.status());
  auto primers = conn->Exec(
      "SELECT p.name, p.engine, count(c.key), count(c.error), max(c.computed_at)::text, "
      "coalesce(max(s.augment_fallbacks), 0), max(s.last_fallback) FROM kck.primers p "
      "LEFT JOIN kck.cache c ON c.primer = p.name LEFT JOIN kck.primer_stats s ON s.primer = p.name "
      "GROUP BY p.name, p.engine ORDER BY p.name");
  if (!primers.ok()) return Fail(primers.status());
  auto errors = conn->Exec("SELECT key, error FROM kck.cache WHERE error IS NOT NULL ORDER BY key LIMIT 50");
  if (!errors.ok()) return Fail(errors.status());
  auto problems = RegistryProblems(*conn);
  if (!problems.ok()) return Fail(problems.status());
  nlohmann::json j;
  j["problems"] = *problems;
  j["outbox"] = *outbox;
  j["daemons"] = *daemons;
  j["primers"] = nlohmann::json::array();
  for (int i = 0; i < primers->rows(); ++i) {
    nlohmann::json p = {{"name", primers->get(i, 0)},
                        {"engine", primers->get(i, 1)},
                        {"products", std::stoll(std::string(primers->get(i, 2)))},
                        {"errors", std::stoll(std::string(primers->get(i, 3)))}};
    p["last_refresh"] = primers->is_null(i, 4) ? nlohmann::json() : nlohmann::json(primers->get(i, 4));
    p["augment_fallbacks"] = std::stoll(std::string(primers->get(i, 5)));
    p["last_fallback"] = primers->is_null(i, 6) ? nlohmann::json() : nlohmann::json(primers->get(i, 6));
    j["primers"].push_back(p);
  }
  j["errors"] = nlohmann::json::array();
  for (int i = 0; i < errors->rows(); ++i) j["errors"].push_back({{"key", errors->get(i, 0)}, {"error", errors->get(i, 1)}});
  if (json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("outbox: %lld changes waiting (%lld claimed by daemons), oldest %.1f s, %.1f MB\n",
              j["outbox"]["depth"].get<long long>(), j["outbox"]["claimed"].get<long long>(),
              j["outbox"]["oldest_age_s"].get<double>(), j["outbox"]["bytes"].get<long long>() / 1e6);
  std::printf("daemons: %lld connected, %s\n", j["daemons"]["connected"].get<long long>(),
              j["daemons"]["writers_notify"].get<bool>() ? "one may be waiting (writers notify)"
                                                         : "busy (writers do not notify)");
  std::printf("%-24s %-7s %9s %7s %9s  %s\n", "primer", "engine", "products", "errors", "fallbacks", "last refresh");
  for (const auto& p : j["primers"]) {
    std::printf("%-24s %-7s %9lld %7lld %9lld  %s\n", p["name"].get<std::string>().c_str(),
                p["engine"].get<std::string>().c_str(), p["products"].get<long long>(), p["errors"].get<long long>(),
                p["augment_fallbacks"].get<long long>(),
                p["last_refresh"].is_null() ? "-" : p["last_refresh"].get<std::string>().c_str());
  }
  for (const auto& p : j["primers"]) {
    if (p["last_fallback"].is_null()) continue;
    std::printf("augment fallback: primer \"%s\": %s\n", p["name"].get<std::string>().c_str(),
                p["last_fallback"].get<std::string>().c_str());
  }
  for (const auto& e : j["errors"]) {
    std::printf("error: %s: %s\n", e["key"].get<std::string>().c_str(), e["error"].get<std::string>().c_str());
  }
  for (const auto& p : j["problems"]) {
    std::printf("problem: primer \"%s\": %s\n  hint: %s\n", p["primer"].get<std::string>().c_str(),
                p["problem"].get<std::string>().c_str(), p["hint"].get<std::string>().c_str());
  }
  return 0;
}

}  // namespace kck::cli
