// A private, throwaway PostgreSQL cluster for tests, benchmarks and `kck demo`.
//
// Start() runs initdb into a fresh directory and starts postgres listening
// only on a unix socket inside that directory, so several clusters (from one
// process or many) run side by side without touching the machine's server.
// The destructor stops the server and removes the directory.
//
// As root, the directory is handed to the `postgres` user and initdb/pg_ctl
// run as that user (PostgreSQL refuses to run as root); otherwise they run as
// the current user. The database superuser is always named "postgres".
//
// Not thread-safe except for the const accessors and CreateDatabase(), which
// opens its own connection.
#pragma once

#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/status.h"

namespace kck::pg {

class TempCluster {
 public:
  struct Options {
    // Directory holding initdb, pg_ctl and postgres. Empty: the output of
    // `pg_config --bindir`, else /usr/lib/postgresql/15/bin.
    std::string bindir;
    // Extra server settings as "name=value" (e.g. "synchronous_commit=off"),
    // written to postgresql.conf after kck's own and so overriding them.
    // fsync stays on unless a setting here turns it off.
    std::vector<std::string> settings;
    // No progress lines on stderr.
    bool quiet = true;
  };

  // Creates a directory under $TMPDIR (else /tmp), runs initdb there
  // (trust auth, UTF8, locale C, --no-sync) and starts the server with
  // pg_ctl -w: listen_addresses '', socket in the directory, max_connections
  // 100, recovery_init_sync_method syncfs (fast restart after a crash; fsync
  // stays on). On failure nothing is left behind and the message names the step and
  // ends with the tail of the server or tool output.
  static StatusOr<std::unique_ptr<TempCluster>> Start(const Options& options);

  // Stops the server (immediate mode) if it runs and removes the directory.
  // With KCK_KEEP_CLUSTER=1 in the environment, stops the server cleanly and
  // keeps the directory, printing its path on stderr. Never throws.
  ~TempCluster();

  TempCluster(const TempCluster&) = delete;
  TempCluster& operator=(const TempCluster&) = delete;

  // libpq key=value string: "host=<dir> port=<port> dbname=<db> user=postgres".
  std::string ConnInfo(const std::string& dbname = "postgres") const;

  // CREATE DATABASE with `name` quoted as an identifier (so any name works
  // verbatim, case and all).
  Status CreateDatabase(const std::string& name);

  // pg_ctl stop -m `mode` ("smart", "fast" or "immediate") and waits until
  // the server is gone. After "immediate", Restart() runs crash recovery.
  Status Stop(const std::string& mode = "fast");

  // Starts the server again after Stop(), on the same directory and port.
  // Fails if it is running.
  Status Restart();

  // The cluster's directory: holds the unix socket, data/ and the logs.
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  // The server's log file (server.log in dir()).
  std::string server_log() const { return dir_ + "/server.log"; }

 private:
  // Who runs initdb, pg_ctl and the server.
  struct RunAs {
    bool switch_user = false;  // true when this process is root
    uid_t uid = 0;
    gid_t gid = 0;
  };

  TempCluster(std::string dir, std::string bindir, bool quiet);

  // Runs bindir/`tool` with `args` as run_as_, output appended to tool.log.
  // `step` names the action in the error; the error ends with the tail of
  // server.log when `server_log_tail` is set and the server wrote something
  // during the step, else with the tail of the tool's output.
  Status RunTool(const std::string& step, const std::string& tool,
                 const std::vector<std::string>& args, bool server_log_tail);
  Status InitDb();
  Status WriteConfig(const std::vector<std::string>& settings);
  Status StartServer();
  std::string data_dir() const { return dir_ + "/data"; }
  std::string tool_log() const { return dir_ + "/tool.log"; }

  std::string dir_;     // mkdtemp directory, removed by the destructor
  std::string bindir_;  // PostgreSQL binaries
  RunAs run_as_;
  bool quiet_ = true;
  int port_ = 0;
  bool running_ = false;  // server started by us and not stopped since
};

}  // namespace kck::pg
