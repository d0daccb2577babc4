#include "listener/daemon.h"

#include <spdlog/spdlog.h>

#include <array>
#include <csignal>
#include <utility>

#include "listener/fault.h"
#include "listener/json_text.h"
#include "sql/embedded.h"

namespace kck {

// A batch may take as long as its slowest compute, and then some.
Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)),
      error_retry_(fault::RetryErrorsEachSecond() ? std::chrono::seconds(1) : std::chrono::minutes(2)),
      watchdog_(std::max(options_.compute_timeout, options_.worker_timeout) + std::chrono::seconds(5)) {
  uv_loop_init(&loop_);
  listen_ = std::make_unique<AsyncConnection>(&loop_);
  main_ = std::make_unique<AsyncConnection>(&loop_);
  compute_ = std::make_unique<AsyncConnection>(&loop_);
  if (!options_.python_worker.empty()) {
    worker_ = std::make_unique<WorkerPool>(&loop_, options_.python_worker, options_.worker_timeout);
  }
  executor_ = std::make_unique<Executor>(*main_, *compute_, worker_.get(), options_.batch);
  executor_->set_metrics(&metrics_);
  wakeup_ = std::make_unique<Wakeup>(*listen_);
  janitor_ = std::make_unique<Janitor>(*listen_);
  warmer_ = std::make_unique<Warmer>(*compute_, *main_, worker_.get());
}

Daemon::~Daemon() {
  warmer_.reset();
  janitor_.reset();
  wakeup_.reset();
  executor_.reset();
  worker_.reset();
  listen_.reset();
  main_.reset();
  compute_.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_loop_close(&loop_);
}

void Daemon::OnTick() {
  watchdog_.Tick(busy_, executor_->progress());
  const Due due = scheduler_.Tick();
  schedule_due_ |= due.refresh;
  upkeep_due_ |= due.upkeep;
  if (due.look && !fault::NoPoll()) pending_ = true;
  if (due.summary) summary_.Log();
  timings_due_ |= due.summary;
  retry_due_ |= due.retry || fault::RetryErrorsEachSecond();
  gauges_due_ |= due.gauges;
  warmer_->Tick(std::chrono::steady_clock::now());
  warm_due_ = warmer_->has_work();
  summary_.Tick();
  publish_due_ |= summary_.changed();
  Wake();
}

Status Daemon::StartMetrics() {
  if (options_.metrics_address.empty()) return Status::Ok();
  auto server = std::make_unique<MetricsServer>(&loop_, [this] { return RenderMetrics(); });
  KCK_RETURN_IF_ERROR(server->Listen(options_.metrics_address));
  metrics_server_ = std::move(server);
  scheduler_.set_has_metrics(true);
  return Status::Ok();
}

std::string Daemon::RenderMetrics() {
  metrics_.SetConnected(Connected());
  if (worker_) metrics_.SetWorkerRestarts(worker_->restarts());
  return metrics_.Render(Metrics::Clock::now());
}

int Daemon::Run() {
  if (metrics_server_) spdlog::info("serving Prometheus metrics on http://{}/metrics", metrics_server_->bound());
  // A worker that dies while a request is being written to it must fail
  // that write (EPIPE, handled as the worker's death), not kill the daemon.
  signal(SIGPIPE, SIG_IGN);
  auto on_signal = [](uv_signal_t* s, int signum) {
    auto* self = static_cast<Daemon*>(s->data);
    if (signum == SIGHUP) {
      spdlog::info("SIGHUP: reloading primers");
      self->reload_ = true;
    } else {
      if (self->stopping_) {
        spdlog::warn("second {}: closing connections now, the batch in flight rolls back",
                     signum == SIGTERM ? "SIGTERM" : "SIGINT");
        self->CloseAll();
      } else {
        spdlog::info("{}: finishing the batch in flight, then exiting", signum == SIGTERM ? "SIGTERM" : "SIGINT");
      }
      self->stopping_ = true;
    }
    self->Wake();
  };
  for (auto [sig, handle] : {std::pair{SIGTERM, &sigterm_}, {SIGINT, &sigint_}, {SIGHUP, &sighup_}}) {
    uv_signal_init(&loop_, handle);
    handle->data = this;
    uv_signal_start(handle, on_signal, sig);
  }
  uv_timer_init(&loop_, &tick_);
  tick_.data = this;
  uv_timer_start(&tick_, [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->OnTick(); }, 1000, 1000);
  uv_timer_init(&loop_, &recheck_timer_);
  recheck_timer_.data = this;
  listen_->set_on_notify([this](const std::string& channel) {
    if (channel == "kck_config") {
      reload_ = true;
    } else {
      pending_ = true;
    }
    Wake();
  });
  auto on_broken = [this](const std::string& why) {
    spdlog::warn("connection lost: {}", why);
    Wake();
  };
  listen_->set_on_broken(on_broken);
  main_->set_on_broken(on_broken);
  compute_->set_on_broken(on_broken);
  if (worker_) worker_->Start();

  bool finished = false;
  Spawn(Main(), [&] {
    finished = true;
    if (worker_) worker_->Stop();
    for (auto* t : {&tick_, &recheck_timer_}) {
      uv_timer_stop(t);
      uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
    }
    for (auto* h : {&sigterm_, &sigint_, &sighup_}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    if (metrics_server_) metrics_server_->Close();
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  return finished ? exit_code_ : 1;
}

Task<Status> Daemon::Connect() {
  // A named array, not a braced list: a range-for over an initializer_list
  // does not keep its elements in the coroutine frame with GCC 12.
  const std::array<AsyncConnection*, 3> conns = Connections();
  for (AsyncConnection* conn : conns) {
    Status s = co_await conn->Connect(options_.conninfo);
    if (!s.ok()) co_return s;
  }
  // Notifications arrive on a connection that never sits in a transaction:
  // a listening backend inside a long batch would hold back the server's
  // notification queue. Computes are bounded by statement_timeout; no
  // connection waits on a lock for longer than that.
  const std::string timeout = std::to_string(options_.compute_timeout.count());
  // The claim, the wake-up look and the outbox's truncation each rely on a
  // statement seeing what committed before it, whatever the role's default.
  const std::string read_committed = "SET default_transaction_isolation = 'read committed'; ";
  // Its only writes are the wake-up flag, which a daemon sets again after a crash: no WAL flush to wait for.
  std::string listen = read_committed + "SET synchronous_commit = off; SET lock_timeout = " + timeout +
                       "; SET idle_in_transaction_session_timeout = " + timeout + "; LISTEN kck; LISTEN kck_config";
  // A batch commit lost in a crash takes the deletion of its changes with
  // it, so they are applied again: the batch session need not wait for its
  // WAL flush. Its write transaction waits while the settle computes again
  // the keys that moved: twice the compute timeout.
  const std::string idle_batch = std::to_string(2 * options_.compute_timeout.count());
  std::string batch = read_committed + "SET synchronous_commit = off; SET lock_timeout = " + timeout +
                      "; SET idle_in_transaction_session_timeout = " + idle_batch;
  std::string compute = "SET statement_timeout = " + timeout + "; SET lock_timeout = " + timeout +
                        "; SET idle_in_transaction_session_timeout = " + timeout;
  const std::array<std::string, 3> setup = {listen, batch, compute};
  for (size_t i = 0; i < conns.size(); ++i) {
    auto r = co_await conns[i]->Script(setup[i]);
    if (!r.ok()) co_return r.status();
  }
  co_return Status::Ok();
}

std::array<AsyncConnection*, 3> Daemon::Connections() const { return {listen_.get(), main_.get(), compute_.get()}; }

bool Daemon::Connected() const {
  for (const AsyncConnection* conn : Connections()) {
    if (!conn->connected()) return false;
  }
  return true;
}

void Daemon::CloseAll() {
  for (AsyncConnection* conn : Connections()) conn->Close();
}

Task<Status> Daemon::LoadRegistry() {
  const int64_t before = executor_->generation();
  Status s = co_await executor_->LoadRegistry();
  if (!s.ok()) co_return s;
  bool has_refresh = false;
  for (const auto& p : executor_->registry().primers()) has_refresh |= p->spec.refresh_every.has_value();
  scheduler_.set_has_refresh(has_refresh);
  if (!options_.until_idle) warmer_->Loaded(executor_->registry(), std::chrono::steady_clock::now());
  warm_due_ = warmer_->has_work();
  spdlog::info("loaded {} primers (registry generation {})", executor_->registry().primers().size(),
               executor_->generation());
  // New primers may come with new code: the worker must not run the old.
  if (worker_ && before >= 0 && before != executor_->generation()) worker_->Restart("the primers changed");
  co_return Status::Ok();
}

bool Daemon::GiveUp(const Status& s) {
  if (!options_.until_idle) return false;
  spdlog::error("--until-idle: {}", s.message());
  exit_code_ = 1;
  stopping_ = true;
  return true;
}

Task<bool> Daemon::AwaitSchema(const Status& s) {
  const bool gone = (s.sqlstate() == "3F000" || s.sqlstate() == "42P01" || s.sqlstate() == "42883") &&
                    s.message().find("kck") != std::string::npos;
  if (!gone || options_.until_idle) co_return false;
  if (schema_gone_.Allow("kck", std::chrono::steady_clock::now())) {
    spdlog::error("kck's schema is missing or incomplete ({}); connecting again until kck install creates it",
                  pg::Excerpt(s.message(), 300));
  }
  // As at start-up: connect, load the primers and register, with backoff.
  CloseAll();
  co_return true;
}

Task<bool> Daemon::ConnectOnce(std::chrono::milliseconds* backoff) {
  Status s = co_await Connect();
  if (s.ok()) s = co_await LoadRegistry();
  if (s.ok() && !options_.until_idle) s = co_await wakeup_->Register();
  if (s.ok()) {
    *backoff = std::chrono::milliseconds(100);
    co_return true;
  }
  if (GiveUp(s)) co_return false;
  spdlog::warn("{}; retrying in {} ms", pg::Excerpt(s.message(), 500), backoff->count());
  CloseAll();
  // Sleep in slices so a stop request is honoured quickly.
  for (auto left = *backoff; left.count() > 0 && !stopping_; left -= std::chrono::milliseconds(100)) {
    co_await Sleep(&loop_, 100);
  }
  *backoff = std::min(*backoff * 2, options_.max_backoff);
  co_return false;
}

Task<void> Daemon::Main() {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopping_) {
    const bool connected = co_await ConnectOnce(&backoff);
    if (!connected) continue;
    if (std::exchange(connected_once_, true)) metrics_.AddReconnect();
    auto depth = co_await main_->Query(sql::File("daemon_outbox_depth.sql"));
    if (depth.ok() && depth->rows() == 1) {
      spdlog::info("connected, listening on channel kck; {} changes waiting (oldest {} s)", depth->get(0, 0),
                   depth->get(0, 1));
    }
    if (!ready_sent_) {
      Watchdog::Notify("READY=1\nSTATUS=listening");
      ready_sent_ = true;
    }
    pending_ = true;
    upkeep_due_ = true;  // first: claims a crashed run of this daemon left are released
    gauges_due_ = metrics_server_ != nullptr;
    reload_ = idle_ = recheck_due_ = false;
    co_await Serve();
    if (!stopping_) spdlog::warn("reconnecting");
    CloseAll();
  }
  // Open still when --until-idle gave up on connections that loaded no
  // primers: the event loop runs as long as they are.
  CloseAll();
  Watchdog::Notify("STOPPING=1");
  spdlog::info("stopped");
}

Task<void> Daemon::Serve() {
  bool serving = true;
  while (serving && !stopping_ && Connected()) {
    if (reload_) {
      serving = co_await Reload();
    } else if (upkeep_due_) {
      // Between batches, even under load: the claim scans what the parts hold.
      upkeep_due_ = false;
      auto released = co_await janitor_->Upkeep();
      if (released.ok() && *released > 0) pending_ = true;
      if (!released.ok() && !co_await AwaitSchema(released.status())) janitor_->Failed(released.status());
    } else if (publish_due_) {
      publish_due_ = false;
      co_await PublishStats();
    } else if (timings_due_) {
      timings_due_ = false;
      co_await PublishTimings();
    } else if (gauges_due_) {
      gauges_due_ = false;
      co_await ReadGauges();
    } else if (pending_) {
      idle_ = false;
      busy_ = true;
      serving = co_await RunBatch();
      busy_ = false;
    } else if (schedule_due_) {
      idle_ = false;
      busy_ = true;
      co_await RunScheduled();
      busy_ = false;
    } else if (retry_due_) {
      busy_ = true;
      co_await RetryErrors();
      busy_ = false;
    } else if (warm_due_) {
      co_await Warm();
    } else if (coalesce_ms_ > 0) {
      // Under load (the last batch claimed several changes) more come while
      // a batch runs. They gather for a moment, the daemon not going idle
      // (the wake-up flag stays 0: writers do not notify), and one batch
      // claims them all: each batch costs the database about the same
      // whatever its size.
      const uint64_t ms = std::exchange(coalesce_ms_, 0);
      co_await Sleep(&loop_, ms);
      pending_ = true;
    } else if (!idle_ && !options_.until_idle) {
      co_await GoIdle();
    } else if (recheck_due_) {
      co_await Recheck();
    } else {
      co_await wake_;
    }
  }
  // A clean stop: writers need not wake this daemon any more, and the next
  // daemon begins with what this one timed.
  if (stopping_) {
    co_await PublishTimings();
    (void)co_await wakeup_->Unregister();
  }
}

Task<bool> Daemon::Reload() {
  reload_ = false;
  Status r = co_await LoadRegistry();
  if (!r.ok() && GiveUp(r)) co_return false;
  if (!r.ok()) {
    if (co_await AwaitSchema(r)) co_return true;
    // Planning with primers known to be stale could leave products
    // silently wrong: changes wait in the outbox instead.
    spdlog::error("{}; changes stay queued until the primers load", pg::Excerpt(r.message(), 500));
    co_await Sleep(&loop_, 1000);
    reload_ = true;
    co_return true;
  }
  pending_ = true;
  co_return true;
}

Task<bool> Daemon::RunBatch() {
  pending_ = false;
  auto t0 = std::chrono::steady_clock::now();
  metrics_.SetBatchRunning(true, t0);
  auto stats = co_await executor_->RunBatch();
  const auto t1 = std::chrono::steady_clock::now();
  metrics_.SetBatchRunning(false, t1);
  failed_batches_ = stats.ok() ? 0 : failed_batches_ + 1;
  if (!stats.ok()) metrics_.AddRollback();
  // A failure can be transient (a deadlock, the worker restarting): even
  // --until-idle tries again before it gives up.
  if (failed_batches_ >= 3 && GiveUp(stats.status().WithContext("batch rolled back 3 times"))) co_return false;
  if (!stats.ok()) {
    if (co_await AwaitSchema(stats.status())) co_return true;
    spdlog::error("batch rolled back, changes stay queued: {}", pg::Excerpt(stats.status().message(), 500));
    if (Connected()) {
      co_await Sleep(&loop_, 1000);  // e.g. a deadlock: try again shortly
      pending_ = true;
    }
    co_return true;
  }
  if (stats->registry_moved) {
    spdlog::info("the primers changed since they were loaded; reloading before the next batch");
    reload_ = pending_ = true;
    co_return true;
  }
  summary_.AddBatch(*stats, t1 - t0);
  if (stats->changes > 0) {
    metrics_.AddBatch(*stats, std::chrono::duration<double>(t1 - t0).count());
    // The batch may have emptied the outbox (with several daemons, often one
    // that another daemon's warm-up filled): a warm-up in progress goes on.
    warm_due_ = warmer_->has_work();
    coalesce_ms_ = options_.until_idle ? 0 : CoalesceMs(stats->changes);
  }
  if (stats->changes >= static_cast<size_t>(options_.batch)) pending_ = true;  // more waiting
  if (!options_.until_idle) co_return true;
  // The batch's cache writes may have queued changes of products that
  // depend on products: look again until a batch claims nothing.
  if (stats->changes == 0 && !pending_) {
    const bool empty = co_await OutboxEmpty();
    if (empty) {
      spdlog::info("--until-idle: the outbox is empty, exiting");
      stopping_ = true;
      co_return false;
    }
    // Claimed by another daemon, or by this one before a lost connection
    // (released by the upkeep once that backend is gone).
    co_await Sleep(&loop_, 100);
    upkeep_due_ = true;
  }
  pending_ = true;
  co_return true;
}

Task<void> Daemon::PublishStats() {
  if (wakeup_->id().empty()) co_return;
  pg::Params params = {wakeup_->id(), summary_.Published()};
  auto r = co_await listen_->Query(sql::File("daemon_publish_stats.sql"), std::move(params));
  if (!r.ok()) spdlog::debug("publishing the last minute's counts: {}", pg::Excerpt(r.status().message(), 300));
}

Task<void> Daemon::PublishTimings() {
  auto timings = executor_->TakeTimings();
  if (!timings) co_return;
  pg::Params params = {std::to_string(executor_->generation()), timings->dump()};
  co_await fault::At("publish_timings", *listen_);
  auto r = co_await listen_->Query(sql::File("daemon_publish_timings.sql"), std::move(params));
  if (!r.ok()) {
    spdlog::debug("publishing the primers' timings: {}", pg::Excerpt(r.status().message(), 300));
    executor_->TimingsNotPublished(*timings);  // the next publish has them
  }
}

Task<void> Daemon::ReadGauges() {
  auto r = co_await listen_->Query(sql::File("status_outbox.sql"));
  if (!r.ok() || r->rows() != 1) {
    if (!r.ok()) spdlog::debug("reading the outbox for metrics: {}", pg::Excerpt(r.status().message(), 300));
    co_return;
  }
  OutboxGauges g;
  g.changes = ParsedNumber<long long>(r->get(0, 0));
  g.lag_s = ParsedNumber<double>(r->get(0, 1));
  g.bytes = ParsedNumber<long long>(r->get(0, 2));  // "" when NULL: 0
  g.claimed = ParsedNumber<long long>(r->get(0, 3));
  metrics_.SetOutbox(g, std::chrono::steady_clock::now());
}

Task<bool> Daemon::OutboxEmpty() {
  auto depth = co_await main_->Query(sql::File("daemon_outbox_depth.sql"));
  co_return depth.ok() && depth->rows() == 1 && depth->get(0, 0) == "0";
}

Task<void> Daemon::RunScheduled() {
  schedule_due_ = false;
  auto stats = co_await executor_->RunScheduled();
  if (!stats.ok()) {
    spdlog::error("scheduled refresh rolled back: {}", pg::Excerpt(stats.status().message(), 500));
    co_return;
  }
  if (stats->registry_moved) reload_ = pending_ = true;
  summary_.AddScheduled(*stats);
}

Task<void> Daemon::RetryErrors() {
  retry_due_ = false;
  auto stats = co_await executor_->RetryErrors(error_retry_, std::chrono::steady_clock::now());
  if (!stats.ok()) {
    spdlog::warn("trying products in error again: {}", pg::Excerpt(stats.status().message(), 500));
    co_return;
  }
  if (stats->registry_moved) reload_ = true;
  pending_ = true;  // the refresh requests it queued
  summary_.AddScheduled(*stats);
}

Task<void> Daemon::Warm() {
  warm_due_ = false;
  const bool empty = co_await OutboxEmpty();
  if (!empty) co_return;  // the last slice, or other work, first: again next tick
  auto queued = co_await warmer_->Step(executor_->registry());
  if (!queued.ok()) {
    spdlog::warn("warm-up: {}; trying again", pg::Excerpt(queued.status().message(), 500));
    co_return;
  }
  if (*queued > 0) {
    idle_ = false;
    pending_ = true;
  }
  // Again once the slice is computed (batches come first) and the outbox is empty.
  warm_due_ = warmer_->has_work();
}

Task<void> Daemon::GoIdle() {
  auto pending = co_await wakeup_->GoIdle();
  if (!pending.ok()) {
    if (co_await AwaitSchema(pending.status())) co_return;
    // Stay busy: the periodic look (or a reconnect) tries again.
    spdlog::warn("{}", pg::Excerpt(pending.status().message(), 500));
    co_await Sleep(&loop_, 100);
    co_return;
  }
  // A notification that came with the look's reply has set pending_: a
  // writer that started after the look's snapshot and committed before its
  // reply is neither seen by it nor among the transactions to recheck.
  pending_ = pending_ || *pending;
  idle_ = !pending_;
  if (idle_ && wakeup_->watching()) StartRecheckTimer();
}

Task<void> Daemon::Recheck() {
  recheck_due_ = false;
  auto pending = co_await wakeup_->Recheck();
  if (!pending.ok()) {
    spdlog::warn("{}", pg::Excerpt(pending.status().message(), 500));
    wakeup_->Reset();
    co_return;
  }
  if (*pending) {
    pending_ = true;
    wakeup_->Reset();
  } else if (wakeup_->watching()) {
    StartRecheckTimer();
  }
}

void Daemon::StartRecheckTimer() {
  uv_timer_start(
      &recheck_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Daemon*>(t->data);
        self->recheck_due_ = true;
        self->Wake();
      },
      wakeup_->delay().count(), 0);
}

}  // namespace kck
