// kck listen --metrics (listener/metrics.h, listener/metrics_server.h):
// a Prometheus scrape of a daemon at work.
#include <regex>
#include <sstream>

#include "daemon_helpers.h"
#include "scrape.h"

namespace kck::testing {
namespace {

class MetricsTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    // fragile/1 fails to compute once author 1 has more than 10 books (the schema gives each 10).
    std::string config = kBookstoreConfig;
    config.insert(config.rfind(']'), R"json(, {"name": "fragile", "parameters": [{"name": "author_id", "type": "int"}],
      "compute": "SELECT 1 / CASE WHEN count(*) > 10 THEN 0 ELSE 1 END FROM store_book WHERE author_id = :author_id",
      "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]})json");
    InstallConfig(conn_, config);
    Prime(conn_, {"title_list/1", "book_count/1", "book_count/2", "fragile/1"});
    port_ = FreePort();
  }
  std::string Scrape() { return ScrapeMetrics(port_); }
  int port_ = 0;
};

TEST_F(MetricsTest, AScrapeShowsBatchesComputesErrorsAndReconnects) {
  DaemonProcess daemon(conninfo_, {"--metrics", "127.0.0.1:" + std::to_string(port_)});
  std::string m;
  ASSERT_TRUE(WaitFor([&] { return Value(m = Scrape(), "kck_up") == 1; })) << m;
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'single')");
  ASSERT_TRUE(WaitFor([&] { return Value(m = Scrape(), "kck_changes_applied_total") == 1; })) << m;
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 2, 'bulk' FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Value(m = Scrape(), "kck_changes_applied_total") == 2; })) << m;
  // book_count/2 is augmented by the single-row insert; the bulk one recomputes.
  EXPECT_GE(Value(m, "kck_products_total{outcome=\"augmented\"}"), 1) << m;
  EXPECT_GE(Value(m, "kck_products_total{outcome=\"recomputed\"}"), 2) << m;
  EXPECT_GE(Value(m, "kck_compute_duration_seconds_count{primer=\"title_list\",route=\"recompute\"}"), 1) << m;
  EXPECT_GE(Value(m, "kck_compute_duration_seconds_count{primer=\"book_count\",route=\"augment\"}"), 1) << m;
  EXPECT_EQ(Value(m, "kck_compute_errors_total{primer=\"fragile\"}"), 1) << m;
  EXPECT_EQ(Value(m, "kck_products_total{outcome=\"error\"}"), 1) << m;
  EXPECT_GE(Value(m, "kck_batch_duration_seconds_count"), 1) << m;
  EXPECT_EQ(Value(m, "kck_batch_duration_seconds_bucket{le=\"+Inf\"}"), Value(m, "kck_batch_duration_seconds_count"));
  ASSERT_TRUE(WaitFor([&] { return Value(m = Scrape(), "kck_lag_seconds") == 0; })) << m;
  EXPECT_EQ(Value(m, "kck_outbox_changes"), 0) << m;
  EXPECT_EQ(Value(m, "kck_reconnects_total"), 0) << m;
  // Every line is a comment or `series value`, as Prometheus parses them.
  const std::regex sample(R"(^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+|\+Inf)$)");
  std::istringstream in(m);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }

  MustExec(conn_, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE pid <> pg_backend_pid() AND datname = current_database()");
  ASSERT_TRUE(WaitFor([&] { return Value(m = Scrape(), "kck_reconnects_total") == 1; })) << m;
  EXPECT_EQ(Value(m, "kck_up"), 1) << m;
}

TEST_F(MetricsTest, OnlyGetOfMetricsIsServed) {
  DaemonProcess daemon(conninfo_, {"--metrics", "127.0.0.1:" + std::to_string(port_)});
  ASSERT_TRUE(WaitFor([&] { return !Scrape().empty(); }));
  EXPECT_EQ(Http(port_, "GET / HTTP/1.1").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Http(port_, "POST /metrics HTTP/1.1").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Http(port_, "GET /metrics?x=1 HTTP/1.1").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(Http(port_, "GET /" + std::string(9000, 'a') + " HTTP/1.1").rfind("HTTP/1.1 431", 0), 0u);
  // A client that never finishes its request does not hold the daemon up.
  int idle = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_FALSE(Scrape().empty());
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'while idle')");
  EXPECT_TRUE(WaitDrained(conn_));
  close(idle);
}

TEST_F(MetricsTest, ABadAddressOrAPortInUseIsAOneLineErrorAndExit2) {
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' listen --metrics localhost:80x", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("--metrics \"localhost:80x\": port \"80x\" is not a number"), std::string::npos) << out;
  // An empty address is no address: it used to run without metrics
  // (--until-idle: such a daemon would exit 0 instead of running on).
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' listen --until-idle --metrics ''", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(out, "kck: --metrics \"\": expected HOST:PORT, e.g. 127.0.0.1:9187\n");
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' listen --metrics localhost:80", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("host \"localhost\" is not an IPv4 address"), std::string::npos) << out;
  LocalSocket taken;
  std::tie(rc, out) =
      RunKckShell("--db '" + conninfo_ + "' listen --metrics 127.0.0.1:" + std::to_string(taken.port), "2>&1");
  // Only the error: no "listening" line before it.
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(out, "kck: --metrics \"127.0.0.1:" + std::to_string(taken.port) +
                     "\": cannot listen: address already in use\n");
}

}  // namespace
}  // namespace kck::testing
