// The kck subcommands. Each returns the process exit code: 0 ok, 1 runtime
// failure, 2 usage or config error; errors are printed as one line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "pg/connection.h"

namespace kck::cli {

struct Global {
  std::string db;  // --db or KCK_DATABASE_URL
};

int Fail(const Status& status);  // prints "kck: <message>" and maps the kind to 1 or 2
// The connection --db (or KCK_DATABASE_URL) names.
StatusOr<pg::Connection> Connect(const Global& g);

int Install(const Global& g, const std::string& config_path, bool dry_run);
int Uninstall(const Global& g, bool drop_data, bool dry_run);
// The options of `kck listen`, as typed.
struct ListenArgs {
  std::string python_worker, worker_timeout = "30s", compute_timeout = "30s";
  std::optional<std::string> metrics;  // as given, also when empty
  int batch = 5000;
  bool until_idle = false;
};
int Listen(const Global& g, const ListenArgs& args);
int Get(const Global& g, const std::string& key);
int Refresh(const Global& g, const std::vector<std::string>& keys);
// cli/status.cc; with `watch`, again every `interval_s` until interrupted.
int StatusCmd(const Global& g, bool json, bool watch, double interval_s);
// Computes the missing products of primers' warm SQL (cli/warm.cc).
int Warm(const Global& g, const std::vector<std::string>& primers, int jobs);
// Why a product is what it is: rules, stored row, pending changes, dependents (cli/explain.cc).
int ExplainCmd(const Global& g, const std::string& key, bool json);
int Demo(const Global& g, bool django, const std::string& self_path);

}  // namespace kck::cli
