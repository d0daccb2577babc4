// Periodic refresh (refresh_every) and soft/hard expiry on reads.
#include "daemon_helpers.h"

namespace kck::testing {
namespace {

const char* kExpiringConfig = R"json({"primers": [
  {"name": "count", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "refresh_every": "1s", "soft_expire": "1h", "hard_expire": "1d"}]})json";

class ExpiryTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kExpiringConfig);
    Prime(conn_, {"count/1"});
  }
  // A write the capture triggers do not see, so only a refresh can notice.
  void SilentInsert() {
    MustExec(conn_, "SET session_replication_role = replica; "
                    "INSERT INTO store_book (author_id, title) VALUES (1, 'silent'); "
                    "SET session_replication_role = origin");
  }
};

TEST_F(ExpiryTest, RefreshEveryRecomputesStoredProducts) {
  auto expiry = conn_.Exec("SELECT soft_expire > now() + interval '59 minutes', hard_expire > now() + interval '23 hours' FROM kck.cache");
  EXPECT_EQ(expiry->get(0, 0), "t");
  EXPECT_EQ(expiry->get(0, 1), "t");
  SilentInsert();
  EXPECT_EQ(OutboxDepth(conn_), 0);
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "count/1") == "11"; }, std::chrono::seconds(10)));
}

TEST_F(ExpiryTest, SoftExpiredServesStoredValueAndQueuesRefresh) {
  SilentInsert();
  MustExec(conn_, "UPDATE kck.cache SET soft_expire = now() - interval '1 second'");
  auto registry = LoadRegistry(conn_);
  Products products(conn_, *registry);
  auto v = products.Get("count/1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "10");  // served as stored
  EXPECT_EQ(OutboxDepth(conn_), 1);  // and a refresh queued for the daemon
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "count/1") == "11"; }));
}

TEST_F(ExpiryTest, HardExpiredIsNeverServed) {
  SilentInsert();
  MustExec(conn_, "UPDATE kck.cache SET hard_expire = now() - interval '1 second'");
  auto registry = LoadRegistry(conn_);
  Products products(conn_, *registry);
  auto v = products.Get("count/1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "11");
  EXPECT_EQ(Stored(conn_, "count/1"), "11");
}

TEST_F(ExpiryTest, ComputeErrorOnReadStoresNothing) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "count", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id"},
    {"name": "broken", "parameters": [{"name": "n", "type": "int"}], "compute": "SELECT 1 / (:n - :n)"}]})json");
  auto registry = LoadRegistry(conn_);
  Products products(conn_, *registry);
  auto v = products.Get("broken/3");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("primer \"broken\": key \"broken/3\": compute failed: division by zero"),
            std::string::npos)
      << v.status().message();
  EXPECT_EQ(Stored(conn_, "broken/3"), "<absent>");
}

}  // namespace
}  // namespace kck::testing
