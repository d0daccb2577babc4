// Remote imports: primers of kind http and command (primers/import_fetch.h,
// listener/import_engine.h), against a local HTTP server the test starts
// (http_fixture.py) and small commands.
#include <nlohmann/json.hpp>

#include "daemon_helpers.h"
#include "scrape.h"

namespace kck::testing {
namespace {

// http_fixture.py as a child process; port() once it listens.
class HttpFixture {
 public:
  HttpFixture() {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    const std::string script = std::string(KCK_SOURCE_DIR) + "/tests/integration/http_fixture.py";
    char* argv[] = {const_cast<char*>("/usr/bin/python3"), const_cast<char*>(script.c_str()), nullptr};
    posix_spawn(&pid_, argv[0], &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    out_ = fds[0];  // open while the server runs: it never writes to a closed pipe
    std::string line;
    char c = 0;
    for (ssize_t n; line.size() < 16 && (n = read(out_, &c, 1)) != 0 && c != '\n';) {
      if (n > 0) line += c;
      if (n < 0 && errno != EINTR) break;  // EINTR: a child of the test exited meanwhile
    }
    port_ = std::atoi(line.c_str());
  }
  ~HttpFixture() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(out_);
  }
  int port() const { return port_; }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  nlohmann::json Get(const std::string& path) const {
    std::string r = Http(port_, "GET " + path + " HTTP/1.1");
    size_t body = r.find("\r\n\r\n");
    return nlohmann::json::parse(body == std::string::npos ? "null" : r.substr(body + 4), nullptr, false);
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0;
  int out_ = -1;  // the server's stdout
};

class ImportTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    ASSERT_GT(http_.port(), 0);
    const std::string base = http_.Url("");
    InstallConfig(conn_, R"json({"primers": [
      {"name": "author_api", "kind": "http", "parameters": [{"name": "author_id", "type": "int"}],
       "url": ")json" + base + R"json(/authors/:author_id", "timeout": "2s", "retries": 0,
       "headers": {"X-Token": "env:KCK_TEST_TOKEN"}},
      {"name": "author_card", "parameters": [{"name": "author_id", "type": "int"}],
       "compute": "SELECT value->'name' FROM kck.cache WHERE key = 'author_api/' || :author_id",
       "depends_on": [{"primer": "author_api", "params": {"author_id": "author_id"}}]},
      {"name": "by_name", "kind": "http", "parameters": [{"name": "name", "type": "str"}],
       "url": ")json" + base + R"json(/names/:name"},
      {"name": "flaky", "kind": "http", "url": ")json" + base + R"json(/flaky", "retries": 3},
      {"name": "slow", "kind": "http", "url": ")json" + base + R"json(/slow", "timeout": "1s", "retries": 0},
      {"name": "huge", "kind": "http", "url": ")json" + base + R"json(/huge", "max_bytes": 100000},
      {"name": "notjson", "kind": "http", "url": ")json" + base + R"json(/notjson"},
      {"name": "missing", "kind": "http", "url": ")json" + base + R"json(/missing"},
      {"name": "redirected", "kind": "http", "url": ")json" + base + R"json(/redirect"},
      {"name": "rates", "kind": "command", "parameters": [{"name": "currency", "type": "str"}],
       "argv": ["/usr/bin/python3", "-c", "import json, sys; print(json.dumps({'currency': sys.argv[1]}))", ":currency"]},
      {"name": "exits", "kind": "command", "argv": ["/bin/sh", "-c", "echo broken >&2; exit 3"], "retries": 0},
      {"name": "hangs", "kind": "command", "argv": ["/bin/sleep", "10"], "timeout": "1s", "retries": 0},
      {"name": "prints", "kind": "command", "argv": ["/bin/echo", "not json"]},
      {"name": "clock", "kind": "command", "argv": ["/bin/date", "+%s%N"], "refresh_every": "1s"}
    ]})json");
  }
  std::pair<int, std::string> Get(const std::string& key) {
    return RunKckShell("--db '" + conninfo_ + "' get '" + key + "'", "2>&1");
  }
  HttpFixture http_;
  ScopedEnv token_{{"KCK_TEST_TOKEN", "secret"}};
};

TEST_F(ImportTest, KckGetFetchesWithTheKeysParametersEscapedIntoTheUrl) {
  auto [rc, out] = Get("author_api/5");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out), nlohmann::json::parse(R"({"id": 5, "name": "author 5"})"));
  std::tie(rc, out) = Get("by_name/a%2Fb c?d");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(R"("a%2Fb%20c%3Fd")"), std::string::npos) << out;
  std::tie(rc, out) = Get("redirected");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(R"("path": "redirected")"), std::string::npos) << out;
  std::tie(rc, out) = Get("flaky");  // 503 twice, then 200: retried with backoff
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(http_.Get("/stats")["requests"]["/flaky"], 3);
  std::tie(rc, out) = Get("rates/EUR");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(R"("currency": "EUR")"), std::string::npos) << out;
}

TEST_F(ImportTest, FailuresAreOneLineErrorsNamingPrimerAndKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"slow", "Timeout was reached"},
      {"huge", "response is larger than max_bytes (100000)"},
      {"notjson", "response is not JSON: hello"},
      {"missing", "HTTP 404 (GET " + http_.Url("/missing") + "): no such thing"},
      {"exits", "command exited with status 3: broken"},
      {"hangs", "command timed out after 1 s"},
      {"prints", "command output is not JSON: not json"}};
  for (const auto& [key, message] : cases) {
    auto [rc, out] = Get(key);
    EXPECT_EQ(rc, 1) << key << ": " << out;
    EXPECT_NE(out.find("primer \"" + key + "\": key \"" + key + "\": import failed: "), std::string::npos) << out;
    EXPECT_NE(out.find(message), std::string::npos) << key << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_EQ(Stored(conn_, key), "<absent>");
  }
}

TEST_F(ImportTest, TheDaemonKeepsTheLastGoodValueRecordsTheErrorAndCascades) {
  Prime(conn_, {"author_api/7", "author_card/7"});
  DaemonProcess daemon(conninfo_);
  auto refresh = [&] { MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['author_api/7'])"); };
  auto field = [&](const std::string& column) {
    return Scalar(conn_, "SELECT " + column + "::text FROM kck.cache WHERE key = 'author_api/7'");
  };
  // Unchanged upstream: the daemon's second fetch is a conditional request,
  // answered 304; nothing moves.
  refresh();
  ASSERT_TRUE(WaitDrained(conn_));
  refresh();
  ASSERT_TRUE(WaitFor([&] { return http_.Get("/stats")["not_modified"] == 1; }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(field("version"), "1");
  // Upstream fails: the value stays, the error is recorded.
  http_.Get("/fail/7/1");
  refresh();
  ASSERT_TRUE(WaitFor([&] { return field("error") != "<null>"; })) << field("error");
  EXPECT_NE(field("error").find("HTTP 500"), std::string::npos) << field("error");
  EXPECT_EQ(field("value->>'name'"), "author 7");
  // Upstream recovers with a new name: stored, the error cleared, and the card that reads it follows.
  http_.Get("/fail/7/0");
  http_.Get("/set/7/renamed");
  refresh();
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "author_card/7") == "\"renamed\""; })) << Stored(conn_, "author_card/7");
  EXPECT_EQ(field("error"), "<null>");
  EXPECT_EQ(field("version"), "2");
}

TEST_F(ImportTest, RefreshEveryImportsAgain) {
  Prime(conn_, {"clock"});
  const std::string first = Stored(conn_, "clock");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "clock") != first; }, std::chrono::seconds(10)));
}

TEST_F(BookstoreTest, InstallRejectsImportsWithoutWhatTheyNeed) {
  for (const auto& [json, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"name": "a", "kind": "http"})", "field \"url\" is required"},
           {R"({"name": "a", "kind": "http", "url": "ftp://x/"})", "url: \"ftp://x/\" is not an http:// or https:// URL"},
           {R"({"name": "a", "kind": "http", "url": "http://x/:nope"})", "url: \":nope\" is not a parameter"},
           {R"({"name": "a", "kind": "command", "argv": ["fetch"]})", "argv[0]: \"fetch\" is not an absolute path"},
           {R"({"name": "a", "kind": "command", "argv": ["/bin/true"], "retries": 11})", "retries\" must be an integer from 0 to 10"},
           {R"({"name": "a", "kind": "ftp"})", "kind \"ftp\" is not"},
           {R"({"name": "a", "compute": "SELECT 1", "url": "http://x/"})", "field \"url\" is for primers of kind http or command"}}) {
    auto config = ParseConfig(R"({"primers": [)" + json + "]}", "primers.json");
    ASSERT_FALSE(config.ok()) << json;
    EXPECT_NE(config.status().message().find(message), std::string::npos) << config.status().message();
  }
}

}  // namespace
}  // namespace kck::testing
