#include "listener/daemon.h"

#include <spdlog/spdlog.h>

#ifdef KCK_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace kck {
namespace {

void Notify(const char* state) {
#ifdef KCK_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

constexpr std::string_view kOutboxDepthSql =
    "SELECT count(*), coalesce(round(extract(epoch FROM now() - min(at)))::bigint, 0) FROM kck.changes";

}  // namespace

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {
  uv_loop_init(&loop_);
  main_ = std::make_unique<AsyncConnection>(&loop_);
  compute_ = std::make_unique<AsyncConnection>(&loop_);
  if (!options_.python_worker.empty()) {
    worker_ = std::make_unique<WorkerPool>(&loop_, options_.python_worker, options_.worker_timeout);
  }
  executor_ = std::make_unique<Executor>(*main_, *compute_, worker_.get(), options_.batch);
#ifdef KCK_HAVE_SYSTEMD
  if (sd_watchdog_enabled(0, &watchdog_usec_) <= 0) watchdog_usec_ = 0;
#endif
}

Daemon::~Daemon() {
  executor_.reset();
  worker_.reset();
  main_.reset();
  compute_.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  uv_loop_close(&loop_);
}

void Daemon::OnTick() {
  if (watchdog_usec_) Notify("WATCHDOG=1");
  ++ticks_;
  if (has_schedule_) schedule_due_ = true;
  // A notification can be missed only across a reconnect, which drains
  // anyway; the periodic look is a cheap second line of defence.
  if (ticks_ % 5 == 0) pending_ = true;
  if (ticks_ % 10 == 0 && (window_.changes || window_.keys || window_.errors || window_.removed)) {
    spdlog::info("last 10s: {} changes applied, {} products written ({} augmented, {} augments fell back), {} removed "
                 "(computed nothing), {} compute errors",
                 window_.changes, window_.keys, window_.augmented, window_.augment_fallbacks, window_.removed,
                 window_.errors);
    window_ = {};
  }
  Wake();
}

int Daemon::Run() {
  auto on_signal = [](uv_signal_t* s, int signum) {
    auto* self = static_cast<Daemon*>(s->data);
    if (signum == SIGHUP) {
      spdlog::info("SIGHUP: reloading primers");
      self->reload_ = true;
    } else {
      if (self->stopping_) {
        spdlog::warn("second {}: closing connections now, the batch in flight rolls back",
                     signum == SIGTERM ? "SIGTERM" : "SIGINT");
        self->main_->Close();
        self->compute_->Close();
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
  main_->set_on_notify([this](const std::string& channel) {
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
  main_->set_on_broken(on_broken);
  compute_->set_on_broken(on_broken);
  if (worker_) worker_->Start();

  bool finished = false;
  Spawn(Main(), [&] {
    finished = true;
    if (worker_) worker_->Stop();
    uv_timer_stop(&tick_);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    for (auto* h : {&sigterm_, &sigint_, &sighup_}) uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  return finished ? exit_code_ : 1;
}

Task<Status> Daemon::Connect() {
  Status s = co_await main_->Connect(options_.conninfo);
  if (!s.ok()) co_return s;
  s = co_await compute_->Connect(options_.conninfo);
  if (!s.ok()) co_return s;
  std::string timeout = "SET statement_timeout = " + std::to_string(options_.compute_timeout.count());
  auto r = co_await compute_->Script(timeout);
  if (!r.ok()) co_return r.status();
  // A batch commit lost in a crash takes the deletion of its changes with
  // it, so they are applied again: the batch session need not wait for its
  // WAL flush.
  r = co_await main_->Script("SET synchronous_commit = off; LISTEN kck; LISTEN kck_config");
  if (!r.ok()) co_return r.status();
  co_return Status::Ok();
}

Task<Status> Daemon::LoadRegistry() {
  const int64_t before = executor_->generation();
  Status s = co_await executor_->LoadRegistry();
  if (!s.ok()) co_return s;
  has_schedule_ = false;
  for (const auto& p : executor_->registry().primers()) has_schedule_ |= p->spec.refresh_every.has_value();
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

Task<void> Daemon::Main() {
  auto backoff = std::chrono::milliseconds(100);
  while (!stopping_) {
    Status s = co_await Connect();
    if (s.ok()) s = co_await LoadRegistry();
    if (!s.ok()) {
      if (GiveUp(s)) break;
      spdlog::warn("{}; retrying in {} ms", pg::Excerpt(s.message(), 500), backoff.count());
      main_->Close();
      compute_->Close();
      // Sleep in slices so a stop request is honoured quickly.
      for (auto left = backoff; left.count() > 0 && !stopping_; left -= std::chrono::milliseconds(100)) {
        co_await Sleep(&loop_, 100);
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    auto depth = co_await main_->Query(kOutboxDepthSql);
    if (depth.ok() && depth->rows() == 1) {
      spdlog::info("connected, listening on channel kck; {} changes waiting (oldest {} s)", depth->get(0, 0),
                   depth->get(0, 1));
    }
    if (!ready_sent_) {
      Notify("READY=1\nSTATUS=listening");
      ready_sent_ = true;
    }
    pending_ = true;
    reload_ = false;
    while (!stopping_ && main_->connected() && compute_->connected()) {
      if (reload_) {
        reload_ = false;
        Status r = co_await LoadRegistry();
        if (!r.ok() && GiveUp(r)) break;
        if (!r.ok()) {
          // Planning with primers known to be stale could leave products
          // silently wrong: changes wait in the outbox instead.
          spdlog::error("{}; changes stay queued until the primers load", pg::Excerpt(r.message(), 500));
          co_await Sleep(&loop_, 1000);
          reload_ = true;
          continue;
        }
        pending_ = true;
        continue;
      }
      if (pending_) {
        pending_ = false;
        auto t0 = std::chrono::steady_clock::now();
        auto stats = co_await executor_->RunBatch();
        failed_batches_ = stats.ok() ? 0 : failed_batches_ + 1;
        // A failure can be transient (a deadlock, the worker restarting):
        // even --until-idle tries again before it gives up.
        if (failed_batches_ >= 3 && GiveUp(stats.status().WithContext("batch rolled back 3 times"))) break;
        if (!stats.ok()) {
          spdlog::error("batch rolled back, changes stay queued: {}", pg::Excerpt(stats.status().message(), 500));
          if (main_->connected() && compute_->connected()) {
            co_await Sleep(&loop_, 1000);  // e.g. a deadlock: try again shortly
            pending_ = true;
          }
          continue;
        }
        if (stats->registry_moved) {
          spdlog::info("the primers changed since they were loaded; reloading before the next batch");
          reload_ = pending_ = true;
          continue;
        }
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        window_.changes += stats->changes;
        window_.keys += stats->keys;
        window_.augmented += stats->augmented;
        window_.removed += stats->removed;
        window_.errors += stats->errors;
        window_.augment_fallbacks += stats->augment_fallbacks;
        if (stats->changes > 0) {
          spdlog::debug("batch: {} changes, {} products written ({} augmented), {} errors in {:.2f} ms",
                        stats->changes, stats->keys, stats->augmented, stats->errors, ms);
        }
        if (stats->changes >= static_cast<size_t>(options_.batch)) pending_ = true;  // more waiting
        if (options_.until_idle) {
          // The batch's cache writes may have queued changes of products
          // that depend on products: look again until a batch claims nothing.
          if (stats->changes == 0 && !pending_) {
            spdlog::info("--until-idle: the outbox is empty, exiting");
            stopping_ = true;
            break;
          }
          pending_ = true;
        }
        continue;
      }
      if (schedule_due_) {
        schedule_due_ = false;
        auto stats = co_await executor_->RunScheduled();
        if (!stats.ok()) {
          spdlog::error("scheduled refresh rolled back: {}", pg::Excerpt(stats.status().message(), 500));
        } else {
          window_.keys += stats->keys;
          window_.errors += stats->errors;
        }
        continue;
      }
      co_await wake_;
    }
    if (!stopping_) spdlog::warn("reconnecting");
    main_->Close();
    compute_->Close();
  }
  Notify("STOPPING=1");
  spdlog::info("stopped");
}

}  // namespace kck
