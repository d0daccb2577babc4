// Metrics: what the daemon counts for Prometheus (`kck listen --metrics`,
// served by listener/metrics_server.h). Pure: the daemon and the executor
// report into it, Render() writes the text exposition format (0.0.4).
//
// Counters only grow for the life of the process; the outbox gauges are
// what the daemon last read (every 5 s, between batches), and their age is
// exported beside them so a stuck daemon shows as a growing age.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <string>

#include "listener/executor.h"

namespace kck {

// Cumulative histogram with fixed buckets (seconds), as Prometheus wants.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,     10,   30};
  void Observe(double seconds);
  // `name`_bucket{labels,le=...}, `name`_sum and `name`_count lines.
  void Render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<unsigned long long, kBounds.size()> counts_{};  // per bucket, not cumulative
  unsigned long long count_ = 0;
  double sum_ = 0;
};

// The outbox as the daemon last read it (sql/status_outbox.sql).
struct OutboxGauges {
  long long changes = 0;  // pending, claimed or not
  long long claimed = 0;
  long long bytes = 0;    // the parts' size
  double lag_s = 0;       // age of the oldest change
};

class Metrics {
 public:
  using Clock = std::chrono::steady_clock;

  // A batch the write transaction committed, and how long it took.
  void AddBatch(const BatchStats& stats, double seconds);
  // A batch that rolled back (its changes stay queued and are retried).
  void AddRollback() { ++rollbacks_; }
  // One product's compute or augment (`augment`), of `primer`.
  void AddCompute(const std::string& primer, bool augment, double seconds);
  // A compute that failed as the primer's own error.
  void AddError(const std::string& primer) { ++errors_[primer]; }
  void AddReconnect() { ++reconnects_; }
  void SetWorkerRestarts(long long n) { worker_restarts_ = static_cast<unsigned long long>(n); }
  void SetConnected(bool connected) { connected_ = connected; }
  void SetOutbox(const OutboxGauges& outbox, Clock::time_point at);
  // A batch started (`true`) or ended: its age is exported while it runs.
  void SetBatchRunning(bool running, Clock::time_point at);

  // The whole exposition, as of `now`.
  std::string Render(Clock::time_point now) const;

 private:
  void RenderOutbox(std::string& out, Clock::time_point now) const;
  void RenderBatches(std::string& out, Clock::time_point now) const;
  void RenderProducts(std::string& out) const;
  void RenderPrimers(std::string& out) const;
  void RenderProcess(std::string& out) const;

  BatchStats totals_;                // summed over committed batches
  unsigned long long batches_ = 0, rollbacks_ = 0, reconnects_ = 0, worker_restarts_ = 0;
  Histogram batch_seconds_;
  // By primer, then route ("recompute" or "augment").
  std::map<std::string, std::map<std::string, Histogram>> compute_seconds_;
  std::map<std::string, unsigned long long> errors_;
  OutboxGauges outbox_;
  Clock::time_point outbox_at_{}, batch_started_{};
  bool outbox_read_ = false, batch_running_ = false, connected_ = false;
};

}  // namespace kck
