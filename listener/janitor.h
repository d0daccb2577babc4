// Upkeep of the outbox (sql/005_outbox_parts.sql, sql/007_claims.sql),
// every second: the parts that are no longer written to and hold no
// pending change are truncated (and kck.claims when no claim is open), so
// the outbox stays a few seconds of changes long even while another
// transaction holds back the xmin horizon and vacuum can remove nothing;
// and the claims of daemons whose connection is gone are released.
#pragma once

#include <chrono>

#include "pg/async_connection.h"
#include "common/task.h"

namespace kck {

class Janitor {
 public:
  explicit Janitor(AsyncConnection& conn) : conn_(conn) {}

  // On a connection outside any transaction. Never waits for a lock.
  // Returns how many claims it released (their changes wait to be claimed),
  // or the failure, which the next call retries.
  Task<StatusOr<long long>> Upkeep();
  // Logs a failed upkeep, at most once a minute.
  void Failed(const Status& s);
  long long truncated() const { return truncated_; }

 private:
  AsyncConnection& conn_;
  long long truncated_ = 0;
  std::chrono::steady_clock::time_point warned_at_{};
};

}  // namespace kck
