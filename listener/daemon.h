// kck listen: the daemon. One libuv loop; three PostgreSQL connections
// (LISTEN kck / kck_config and the wake-up flag, the batch transaction, and
// computes); drain the outbox on start and after every reconnect;
// reconnect with capped exponential backoff; SIGTERM/SIGINT finish the
// batch in flight and exit; SIGHUP or NOTIFY kck_config reload the
// registry; systemd notify and watchdog when run under systemd.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "pg/async_connection.h"
#include "listener/executor.h"
#include "listener/janitor.h"
#include "listener/metrics.h"
#include "listener/metrics_server.h"
#include "listener/scheduler.h"
#include "listener/summary.h"
#include "listener/wakeup.h"
#include "listener/warmer.h"
#include "listener/watchdog.h"
#include "listener/worker_pool.h"

namespace kck {

struct DaemonOptions {
  std::string conninfo;
  int batch = 5000;                      // changes claimed per transaction
  std::string python_worker;             // command line; empty: none
  std::chrono::milliseconds worker_timeout{30000};
  std::chrono::milliseconds compute_timeout{30000};  // statement_timeout of computes
  std::chrono::milliseconds max_backoff{5000};
  // Apply every pending change, then exit: Run() returns 0 once a batch
  // claims nothing, 1 when the database cannot be reached or a batch fails.
  // Changes another daemon holds are not waited for.
  bool until_idle = false;
  // HOST:PORT to serve Prometheus metrics on (listener/metrics_server.h); empty: none.
  std::string metrics_address;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds the metrics endpoint when the options name one; Invalid, naming
  // the address, when it cannot (a port in use). Call it before Run(), so
  // that such a start fails before anything is logged.
  Status StartMetrics();
  // Runs until SIGTERM or SIGINT (or, with until_idle, until the outbox is
  // empty); returns the process exit code. Serves metrics when
  // StartMetrics() bound them.
  int Run();

 private:
  Task<void> Main();
  // Connects and loads the primers; on failure sleeps the backoff.
  Task<bool> ConnectOnce(std::chrono::milliseconds* backoff);
  // Works until the connection breaks or the daemon stops.
  Task<void> Serve();
  // These return false when the daemon must stop serving.
  Task<bool> Reload();
  Task<bool> RunBatch();
  // Whether no change is in the outbox, claimed or not.
  Task<bool> OutboxEmpty();
  // The last minute's counts in kck.listeners, for kck status.
  Task<void> PublishStats();
  // What the batches timed per primer in kck.primer_stats, for the daemons
  // that start later (listener/primer_timings.h).
  Task<void> PublishTimings();
  // The outbox's depth, claims and lag, for the metrics.
  Task<void> ReadGauges();
  std::string RenderMetrics();
  Task<void> RunScheduled();
  // Tries products in error again (listener/error_retry.h).
  Task<void> RetryErrors();
  // Queues the next slice of a warm-up (listener/warmer.h) if the outbox is empty.
  Task<void> Warm();
  Task<void> GoIdle();
  Task<void> Recheck();
  void StartRecheckTimer();
  Task<Status> Connect();
  // listen_, main_, compute_: the order Connect sets them up in.
  std::array<AsyncConnection*, 3> Connections() const;
  bool Connected() const;
  void CloseAll();
  Task<Status> LoadRegistry();
  // With until_idle, a failure ends the run instead of being retried.
  bool GiveUp(const Status& s);
  // When `s` says kck's schema is gone (kck uninstall --drop-data): one
  // error a minute, and the connections closed, so that the daemon connects
  // again as at start-up, with backoff, until kck install; true then.
  Task<bool> AwaitSchema(const Status& s);
  void Wake() { wake_.Set(); }
  void OnTick();

  DaemonOptions options_;
  uv_loop_t loop_;
  uv_signal_t sigterm_, sigint_, sighup_;
  uv_timer_t tick_, recheck_timer_;
  // listen_: LISTEN and the wake-up flag, never in a transaction; main_: the
  // batch transaction; compute_: primer SQL.
  std::unique_ptr<AsyncConnection> listen_, main_, compute_;
  std::unique_ptr<WorkerPool> worker_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Wakeup> wakeup_;
  std::unique_ptr<Janitor> janitor_;
  std::unique_ptr<Warmer> warmer_;
  Event wake_;
  bool stopping_ = false;
  int exit_code_ = 0;
  int failed_batches_ = 0;  // consecutive batches rolled back
  bool pending_ = true, reload_ = true, schedule_due_ = false, ready_sent_ = false;
  bool idle_ = false;         // marked waiting in kck.listeners since the last work
  bool recheck_due_ = false;  // the wakeup's recheck timer fired
  bool upkeep_due_ = false;   // the outbox's upkeep is due (listener/janitor.h)
  bool publish_due_ = false;  // the last minute's counts moved (listener/summary.h)
  bool timings_due_ = false;  // the primers' timings are to be published (every ten seconds)
  bool retry_due_ = false;    // products in error are to be tried again (every minute)
  ErrorRetry error_retry_;
  WarningLimiter schema_gone_{std::chrono::minutes(1)};  // AwaitSchema's one error a minute
  Scheduler scheduler_;
  Summary summary_;
  Metrics metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  bool gauges_due_ = false;     // the outbox gauges are to be read (with --metrics)
  bool warm_due_ = false;       // a warm-up step may run (set every tick and after each step that queued work)
  uint64_t coalesce_ms_ = 0;  // gather changes this long before the next claim (CoalesceMs)
  bool connected_once_ = false;  // later connects are reconnects
  Watchdog watchdog_;
  bool busy_ = false;  // a batch is in flight
};

}  // namespace kck
