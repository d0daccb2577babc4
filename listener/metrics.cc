#include "listener/metrics.h"

#include <fmt/format.h>

namespace kck {
namespace {

// A label value: backslash, double quote and newline escaped.
std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Sample(std::string& out, const char* name, double value, const std::string& labels = "") {
  out += fmt::format("{}{}{}{} {}\n", name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", value);
}

double SecondsBetween(Metrics::Clock::time_point from, Metrics::Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

void Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::Render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  unsigned long long cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, kBounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count_);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, sum_, name, braces, count_);
}

void Metrics::AddBatch(const BatchStats& stats, double seconds) {
  ++batches_;
  batch_seconds_.Observe(seconds);
  totals_.Add(stats);
}

void Metrics::AddCompute(const std::string& primer, bool augment, double seconds) {
  compute_seconds_[primer][augment ? "augment" : "recompute"].Observe(seconds);
}

void Metrics::SetOutbox(const OutboxGauges& outbox, Clock::time_point at) {
  outbox_ = outbox;
  outbox_at_ = at;
  outbox_read_ = true;
}

void Metrics::SetBatchRunning(bool running, Clock::time_point at) {
  batch_running_ = running;
  if (running) batch_started_ = at;
}

std::string Metrics::Render(Clock::time_point now) const {
  std::string out;
  Header(out, "kck_up", "gauge", "1 while the daemon's connections to PostgreSQL are up");
  Sample(out, "kck_up", connected_ ? 1 : 0);
  RenderOutbox(out, now);
  RenderBatches(out, now);
  RenderProducts(out);
  RenderPrimers(out);
  RenderProcess(out);
  return out;
}

void Metrics::RenderOutbox(std::string& out, Clock::time_point now) const {
  if (!outbox_read_) return;  // not read yet: absent rather than a false 0
  Header(out, "kck_lag_seconds", "gauge", "age of the oldest change in the outbox (0 when it is empty)");
  Sample(out, "kck_lag_seconds", outbox_.lag_s);
  Header(out, "kck_outbox_changes", "gauge", "changes in the outbox, claimed by a batch or not");
  Sample(out, "kck_outbox_changes", static_cast<double>(outbox_.changes));
  Header(out, "kck_outbox_claimed_changes", "gauge", "changes in the outbox that batches in flight have claimed");
  Sample(out, "kck_outbox_claimed_changes", static_cast<double>(outbox_.claimed));
  Header(out, "kck_outbox_bytes", "gauge", "disk size of the outbox's parts");
  Sample(out, "kck_outbox_bytes", static_cast<double>(outbox_.bytes));
  Header(out, "kck_outbox_read_age_seconds", "gauge", "how long ago the outbox gauges were read");
  Sample(out, "kck_outbox_read_age_seconds", SecondsBetween(outbox_at_, now));
}

void Metrics::RenderBatches(std::string& out, Clock::time_point now) const {
  Header(out, "kck_batch_duration_seconds", "histogram", "batches committed: claim, compute and write");
  batch_seconds_.Render(out, "kck_batch_duration_seconds", "");
  Header(out, "kck_batches_rolled_back_total", "counter", "batches rolled back; their changes stay queued");
  Sample(out, "kck_batches_rolled_back_total", static_cast<double>(rollbacks_));
  Header(out, "kck_batch_running_seconds", "gauge", "age of the batch in flight (0 when none)");
  Sample(out, "kck_batch_running_seconds", batch_running_ ? SecondsBetween(batch_started_, now) : 0);
  Header(out, "kck_changes_applied_total", "counter", "changes consumed by committed batches");
  Sample(out, "kck_changes_applied_total", static_cast<double>(totals_.changes));
}

void Metrics::RenderProducts(std::string& out) const {
  Header(out, "kck_products_total", "counter", "products a batch produced, by outcome");
  const std::pair<const char*, size_t> outcomes[] = {
      {"recomputed", totals_.keys - totals_.augmented}, {"augmented", totals_.augmented},
      {"unchanged", totals_.unchanged},                 {"fresh", totals_.fresh},
      {"removed", totals_.removed},                     {"error", totals_.errors}};
  for (const auto& [outcome, n] : outcomes) {
    Sample(out, "kck_products_total", static_cast<double>(n), fmt::format("outcome=\"{}\"", outcome));
  }
  Header(out, "kck_augment_fallbacks_total", "counter", "augments that failed and were recomputed");
  Sample(out, "kck_augment_fallbacks_total", static_cast<double>(totals_.augment_fallbacks));
}

void Metrics::RenderPrimers(std::string& out) const {
  Header(out, "kck_compute_duration_seconds", "histogram", "one product's compute or augment, by primer");
  for (const auto& [primer, routes] : compute_seconds_) {
    for (const auto& [route, h] : routes) {
      h.Render(out, "kck_compute_duration_seconds",
               fmt::format("primer=\"{}\",route=\"{}\"", LabelValue(primer), route));
    }
  }
  Header(out, "kck_compute_errors_total", "counter", "computes that failed as the primer's error, by primer");
  for (const auto& [primer, n] : errors_) {
    Sample(out, "kck_compute_errors_total", static_cast<double>(n), fmt::format("primer=\"{}\"", LabelValue(primer)));
  }
}

void Metrics::RenderProcess(std::string& out) const {
  Header(out, "kck_reconnects_total", "counter", "connections to PostgreSQL set up again after one was lost");
  Sample(out, "kck_reconnects_total", static_cast<double>(reconnects_));
  Header(out, "kck_worker_restarts_total", "counter", "Python worker processes started again");
  Sample(out, "kck_worker_restarts_total", static_cast<double>(worker_restarts_));
}

}  // namespace kck
