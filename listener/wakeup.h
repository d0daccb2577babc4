// Wake-ups that cost writers nothing under load (sql/004_wakeup.sql,
// sql/006_wake_flag.sql).
//
// Writers notify only while a daemon may wait, so the daemon tells the
// database when it goes to sleep: GoIdle sets the flag (a sequence, so
// that flipping it leaves no row versions behind) and looks at the outbox
// once more. Transactions still open at that look may have read
// "busy" and will commit without a notification; while any of them runs,
// the daemon rechecks the outbox on a short timer (1 ms, doubling to 50 ms,
// for at most 10 s; after that the daemon's periodic look, every 5 s, is
// the last line of defence).
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"
#include "pg/async_connection.h"
#include "common/task.h"

namespace kck {

class Wakeup {
 public:
  explicit Wakeup(AsyncConnection& conn) : conn_(conn) {}

  // Registers this daemon (its listening connection's backend) as busy and
  // removes the rows of daemons that are gone. On every connect.
  Task<Status> Register();
  // On a clean stop: writers stop notifying for this daemon.
  Task<Status> Unregister();
  // Nothing left to do: marks the daemon waiting. Returns whether changes
  // are pending (then it stays marked busy and should claim them).
  Task<StatusOr<bool>> GoIdle();
  // Whether transactions from GoIdle may still queue changes silently;
  // then Recheck after delay().
  bool watching() const { return !open_.empty(); }
  std::chrono::milliseconds delay() const;
  // Returns whether changes are pending.
  Task<StatusOr<bool>> Recheck();
  // Forget the watch (the daemon claims anyway, or reconnects).
  void Reset() { open_.clear(); }
  // This daemon's id in kck.listeners (its listening backend's pid), once registered.
  const std::string& id() const { return id_; }

 private:
  void Watch(std::string open_xids);

  AsyncConnection& conn_;
  std::string id_;    // the backend pid, as text
  std::string open_;  // xid8[] literal of transactions still open, "" if none
  int rechecks_ = 0;
  std::chrono::steady_clock::time_point watch_since_;
};

}  // namespace kck
