// The systemd watchdog: kck listen pings it (sd_notify WATCHDOG=1) while its
// loop makes progress and stops when a batch is stuck longer than any
// compute may take, so systemd restarts it. The test plays systemd: a
// datagram socket as NOTIFY_SOCKET.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

class NotifySocket {
 public:
  NotifySocket() : path_(std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/kck_notify_" +
                         std::to_string(getpid())) {
    std::remove(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  ~NotifySocket() {
    close(fd_);
    std::remove(path_.c_str());
  }
  const std::string& path() const { return path_; }
  // How many messages containing `text` arrive within `wait`.
  int Count(const std::string& text, std::chrono::milliseconds wait) {
    int n = 0;
    auto end = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[512];
      ssize_t got = recv(fd_, buf, sizeof buf - 1, 0);
      if (got > 0 && std::string(buf, got).find(text) != std::string::npos) ++n;
    }
    return n;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST_F(BookstoreTest, WatchdogPingsStopWhileABatchIsStuckAndResumeAfter) {
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1"});
  NotifySocket systemd;
  ScopedEnv env({{"NOTIFY_SOCKET", systemd.path()}, {"WATCHDOG_USEC", "2000000"}});
  // The stall limit is the longest a compute may take plus 5 s: 6 s here.
  PausedDaemon daemon(conninfo_, "compute", {"--compute-timeout", "1s", "--worker-timeout", "1s"});
  EXPECT_GE(systemd.Count("WATCHDOG=1", std::chrono::milliseconds(2500)), 1);
  MustExec(conn_, "UPDATE store_book SET title = 'stuck' WHERE id = 20");
  ASSERT_TRUE(daemon.WaitPaused());
  (void)systemd.Count("WATCHDOG=1", std::chrono::seconds(7));  // within the limit: still pinging
  EXPECT_EQ(systemd.Count("WATCHDOG=1", std::chrono::milliseconds(2500)), 0);
  daemon.Release();
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("stuck") != std::string::npos; }));
  EXPECT_GE(systemd.Count("WATCHDOG=1", std::chrono::milliseconds(2500)), 1);
}

}  // namespace
}  // namespace kck::testing
