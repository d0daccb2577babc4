// Upkeep of the outbox (sql/005_outbox_parts.sql): the parts that are no
// longer written to and hold no pending change are truncated, every second,
// so the outbox stays a few seconds of changes long even while another
// transaction holds back the xmin horizon and vacuum can remove nothing.
#pragma once

#include <chrono>

#include "pg/async_connection.h"
#include "common/task.h"

namespace kck {

class Janitor {
 public:
  explicit Janitor(AsyncConnection& conn) : conn_(conn) {}

  // On a connection outside any transaction. Never waits for a lock; a
  // failure is logged (at most once a minute) and retried next time.
  Task<void> TruncateOutbox();
  long long truncated() const { return truncated_; }

 private:
  AsyncConnection& conn_;
  long long truncated_ = 0;
  std::chrono::steady_clock::time_point warned_at_{};
};

}  // namespace kck
