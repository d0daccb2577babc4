// ErrorRetry: when the daemon tries products in error again.
//
// A product's error is its primer failing for it for a reason of its own (a
// dropped or renamed column, a typo, data the SQL cannot take). Once the
// cause is fixed, nothing would compute it again until a change reached it:
// it kept its old value and its error. So the daemon tries one product in
// error per primer (a probe, Executor::RetryErrors) once a minute; after a
// probe that fails, the primer waits twice as long as before (2 minutes, 4,
// ... at most an hour), and a probe that computes queues a recompute of the
// primer's other products in error.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace kck {

class ErrorRetry {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ErrorRetry(Clock::duration first = std::chrono::minutes(2), Clock::duration most = std::chrono::hours(1))
      : first_(first), most_(most) {}

  // Whether a product of `primer` in error is to be tried now.
  bool Due(const std::string& primer, Clock::time_point now) const;
  // Its probe failed again: the next waits twice as long as the last.
  void Failed(const std::string& primer, Clock::time_point now);
  // Its probe computed: the primer's products in error are recomputed.
  void Cleared(const std::string& primer);

 private:
  struct Wait {
    Clock::time_point next;
    Clock::duration backoff;
  };
  Clock::duration first_, most_;
  std::map<std::string, Wait> waits_;
};

}  // namespace kck
