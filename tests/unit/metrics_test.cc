// The Prometheus text of listener/metrics.h.
#include "listener/metrics.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h;
  for (double s : {0.0005, 0.003, 0.003, 0.2, 100.0}) h.Observe(s);
  std::string out = "\n";
  h.Render(out, "x_seconds", "primer=\"p\"");
  EXPECT_TRUE(Has(out, "x_seconds_bucket{primer=\"p\",le=\"0.001\"} 1")) << out;
  EXPECT_TRUE(Has(out, "x_seconds_bucket{primer=\"p\",le=\"0.005\"} 3")) << out;
  EXPECT_TRUE(Has(out, "x_seconds_bucket{primer=\"p\",le=\"0.25\"} 4")) << out;
  EXPECT_TRUE(Has(out, "x_seconds_bucket{primer=\"p\",le=\"30\"} 4")) << out;
  EXPECT_TRUE(Has(out, "x_seconds_bucket{primer=\"p\",le=\"+Inf\"} 5")) << out;
  EXPECT_TRUE(Has(out, "x_seconds_count{primer=\"p\"} 5")) << out;
}

TEST(Metrics, CountsBatchesByOutcomeAndPrimersByRoute) {
  Metrics m;
  BatchStats b;
  b.changes = 7;
  b.keys = 5;
  b.augmented = 2;
  b.errors = 1;
  m.AddBatch(b, 0.02);
  m.AddBatch(b, 0.04);
  m.AddCompute("title_list", true, 0.001);
  m.AddCompute("title_list", false, 0.5);
  m.AddError("a\"b");
  const auto now = Metrics::Clock::now();
  std::string out = "\n" + m.Render(now);
  EXPECT_TRUE(Has(out, "kck_changes_applied_total 14")) << out;
  EXPECT_TRUE(Has(out, "kck_products_total{outcome=\"recomputed\"} 6")) << out;
  EXPECT_TRUE(Has(out, "kck_products_total{outcome=\"augmented\"} 4")) << out;
  EXPECT_TRUE(Has(out, "kck_products_total{outcome=\"error\"} 2")) << out;
  EXPECT_TRUE(Has(out, "kck_batch_duration_seconds_count 2")) << out;
  EXPECT_TRUE(Has(out, "kck_compute_duration_seconds_count{primer=\"title_list\",route=\"augment\"} 1")) << out;
  EXPECT_TRUE(Has(out, "kck_compute_duration_seconds_count{primer=\"title_list\",route=\"recompute\"} 1")) << out;
  EXPECT_TRUE(Has(out, "kck_compute_errors_total{primer=\"a\\\"b\"} 1")) << out;
  // The outbox is not exported until it was read: no false zero lag.
  EXPECT_EQ(out.find("kck_lag_seconds"), std::string::npos);
  m.SetOutbox({12, 5, 8192, 3.5}, now);
  m.SetBatchRunning(true, now - std::chrono::seconds(2));
  out = "\n" + m.Render(now + std::chrono::seconds(1));
  EXPECT_TRUE(Has(out, "kck_lag_seconds 3.5")) << out;
  EXPECT_TRUE(Has(out, "kck_outbox_changes 12")) << out;
  EXPECT_TRUE(Has(out, "kck_outbox_read_age_seconds 1")) << out;
  EXPECT_TRUE(Has(out, "kck_batch_running_seconds 3")) << out;
}

}  // namespace
}  // namespace kck
