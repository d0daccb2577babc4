// kck status [--json] [--watch [--interval S]]: the outbox (depth, claimed,
// age of the oldest change = lag, size), the daemons (connected, whether
// writers wake them, what they did in the last minute: changes/s,
// products/s, recomputes, augments, augments that fell back), products and
// errors per primer, and the primers the schema broke.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "sql/embedded.h"

namespace kck::cli {
namespace {

long long Integer(const pg::Result& r, int row, int col) {
  return r.is_null(row, col) ? 0LL : std::stoll(std::string(r.get(row, col)));
}

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

// The outbox (sql/status_outbox.sql).
StatusOr<nlohmann::json> OutboxState(pg::Connection& conn) {
  auto r = conn.Exec(std::string(sql::File("status_outbox.sql")));
  if (!r.ok()) return r.status().WithContext("reading kck.changes (did kck install run?)");
  return nlohmann::json{{"depth", Integer(*r, 0, 0)},
                        {"depth_exact", true},
                        {"oldest_age_s", std::stod(std::string(r->get(0, 1)))},
                        {"bytes", Integer(*r, 0, 2)},
                        {"claimed", Integer(*r, 0, 3)},
                        {"batches_in_flight", Integer(*r, 0, 4)}};
}

// Daemons connected now, whether writers wake them (sql/006_wake_flag.sql),
// and their last minute (sql/status_daemons.sql).
StatusOr<nlohmann::json> DaemonsState(pg::Connection& conn) {
  auto r = conn.Exec(std::string(sql::File("status_daemons.sql")));
  if (!r.ok()) return r.status();
  const double window = std::stod(std::string(r->get(0, 2)));
  const long long products = Integer(*r, 0, 4), augmented = Integer(*r, 0, 5);
  nlohmann::json minute = {{"window_s", window},
                           {"changes", Integer(*r, 0, 3)},
                           {"products", products},
                           {"recomputed", products - augmented},
                           {"augmented", augmented},
                           {"augment_fallbacks", Integer(*r, 0, 6)},
                           {"unchanged", Integer(*r, 0, 7)},
                           {"fresh", Integer(*r, 0, 8)},
                           {"removed", Integer(*r, 0, 9)},
                           {"errors", Integer(*r, 0, 10)}};
  minute["changes_per_s"] = window > 0 ? minute["changes"].get<double>() / window : 0.0;
  minute["products_per_s"] = window > 0 ? static_cast<double>(products) / window : 0.0;
  return nlohmann::json{{"connected", Integer(*r, 0, 0)}, {"writers_notify", r->get(0, 1) == "t"},
                        {"last_minute", minute}};
}

StatusOr<nlohmann::json> Primers(pg::Connection& conn) {
  auto primers = conn.Exec(std::string(sql::File("status_primers.sql")));
  if (!primers.ok()) return primers.status();
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < primers->rows(); ++i) {
    nlohmann::json p = {{"name", primers->get(i, 0)},
                        {"engine", primers->get(i, 1)},
                        {"products", Integer(*primers, i, 2)},
                        {"errors", Integer(*primers, i, 3)}};
    p["last_refresh"] = primers->is_null(i, 4) ? nlohmann::json() : nlohmann::json(primers->get(i, 4));
    p["augment_fallbacks"] = Integer(*primers, i, 5);
    p["last_fallback"] = primers->is_null(i, 6) ? nlohmann::json() : nlohmann::json(primers->get(i, 6));
    out.push_back(p);
  }
  return out;
}

// Each captured table and its capture's language (sql/status_captures.sql).
StatusOr<nlohmann::json> Captures(pg::Connection& conn) {
  auto r = conn.Exec(std::string(sql::File("status_captures.sql")));
  if (!r.ok()) return r.status();
  nlohmann::json out = nlohmann::json::array();
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back({{"table", r->get(i, 0)}, {"capture", r->is_null(i, 1) ? "missing" : std::string(r->get(i, 1))}});
  }
  return out;
}

StatusOr<nlohmann::json> Collect(pg::Connection& conn) {
  nlohmann::json j;
  auto outbox = OutboxState(conn);
  if (!outbox.ok()) return outbox.status();
  auto daemons = DaemonsState(conn);
  if (!daemons.ok()) return daemons.status();
  auto primers = Primers(conn);
  if (!primers.ok()) return primers.status();
  auto errors = conn.Exec("SELECT key, error FROM kck.cache WHERE error IS NOT NULL ORDER BY key LIMIT 50");
  if (!errors.ok()) return errors.status();
  auto problems = RegistryProblems(conn);
  if (!problems.ok()) return problems.status();
  auto captures = Captures(conn);
  if (!captures.ok()) return captures.status();
  j["problems"] = *problems;
  j["captures"] = *captures;
  j["outbox"] = *outbox;
  j["daemons"] = *daemons;
  j["primers"] = *primers;
  j["errors"] = nlohmann::json::array();
  for (int i = 0; i < errors->rows(); ++i) j["errors"].push_back({{"key", errors->get(i, 0)}, {"error", errors->get(i, 1)}});
  return j;
}

// What the wake-up flag (sql/006_wake_flag.sql) says: with no daemon
// connected, none is busy or waiting.
const char* WakeUps(long long connected, bool writers_notify) {
  if (connected == 0) {
    return writers_notify ? "none to wake (writers still notify)" : "none to wake (writers do not notify)";
  }
  return writers_notify ? "one may be waiting (writers notify)" : "busy (writers do not notify)";
}

void PrintDaemons(const nlohmann::json& d) {
  const long long connected = d["connected"].get<long long>();
  std::printf("daemons: %lld connected, %s\n", connected, WakeUps(connected, d["writers_notify"].get<bool>()));
  const auto& m = d["last_minute"];
  std::printf("last %.0f s: %.1f changes/s, %.1f products/s (%lld recomputed, %lld augmented, %lld augments fell "
              "back), %lld unchanged, %lld already fresh, %lld errors\n",
              m["window_s"].get<double>(), m["changes_per_s"].get<double>(), m["products_per_s"].get<double>(),
              m["recomputed"].get<long long>(), m["augmented"].get<long long>(),
              m["augment_fallbacks"].get<long long>(), m["unchanged"].get<long long>(), m["fresh"].get<long long>(),
              m["errors"].get<long long>());
}

void PrintPrimers(const nlohmann::json& primers) {
  std::printf("%-24s %-7s %9s %7s %9s  %s\n", "primer", "engine", "products", "errors", "fallbacks", "last refresh");
  for (const auto& p : primers) {
    std::printf("%-24s %-7s %9lld %7lld %9lld  %s\n", p["name"].get<std::string>().c_str(),
                p["engine"].get<std::string>().c_str(), p["products"].get<long long>(), p["errors"].get<long long>(),
                p["augment_fallbacks"].get<long long>(),
                p["last_refresh"].is_null() ? "-" : p["last_refresh"].get<std::string>().c_str());
  }
  for (const auto& p : primers) {
    if (p["last_fallback"].is_null()) continue;
    std::printf("augment fallback: primer \"%s\": %s\n", p["name"].get<std::string>().c_str(),
                p["last_fallback"].get<std::string>().c_str());
  }
}

void Print(const nlohmann::json& j) {
  std::printf("outbox: %lld changes waiting (%lld claimed by daemons), oldest %.1f s, %.1f MB\n",
              j["outbox"]["depth"].get<long long>(), j["outbox"]["claimed"].get<long long>(),
              j["outbox"]["oldest_age_s"].get<double>(), j["outbox"]["bytes"].get<long long>() / 1e6);
  PrintDaemons(j["daemons"]);
  std::string captures;
  for (const auto& c : j["captures"]) {
    captures += (captures.empty() ? "" : ", ") + c["table"].get<std::string>() + " (" + c["capture"].get<std::string>() + ")";
  }
  long long stored = 0;
  for (const auto& p : j["primers"]) stored += p["products"].get<long long>();
  if (captures.empty() && stored > 0) {
    captures = "none: no change reaches the " + std::to_string(stored) +
               " stored products (kck install captures the tables again and recomputes them)";
  }
  std::printf("captures: %s\n", captures.empty() ? "none" : captures.c_str());
  PrintPrimers(j["primers"]);
  for (const auto& e : j["errors"]) {
    std::printf("error: %s: %s\n", e["key"].get<std::string>().c_str(), e["error"].get<std::string>().c_str());
  }
  for (const auto& p : j["problems"]) {
    std::printf("problem: primer \"%s\": %s\n  hint: %s\n", p["primer"].get<std::string>().c_str(),
                p["problem"].get<std::string>().c_str(), p["hint"].get<std::string>().c_str());
  }
}

int Show(pg::Connection& conn, bool json) {
  auto j = Collect(conn);
  if (!j.ok()) return Fail(j.status());
  if (json) {
    std::printf("%s\n", j->dump(2).c_str());
  } else {
    Print(*j);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int StatusCmd(const Global& g, bool json, bool watch, double interval_s) {
  auto conn = Connect(g);
  if (!conn.ok()) return Fail(conn.status());
  if (!watch) return Show(*conn, json);
  // Refreshed in place on a terminal; otherwise one report after another.
  const bool tty = isatty(STDOUT_FILENO) && !json;
  while (true) {
    if (tty) std::printf("\x1b[H\x1b[2J");
    const int rc = Show(*conn, json);
    if (rc != 0) return rc;
    if (!tty) std::printf("\n");
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

}  // namespace kck::cli
