#include "listener/watchdog.h"

#include <spdlog/spdlog.h>

#ifdef KCK_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace kck {

Watchdog::Watchdog(std::chrono::steady_clock::duration limit) : limit_(limit) {
#ifdef KCK_HAVE_SYSTEMD
  if (sd_watchdog_enabled(0, &watchdog_usec_) <= 0) watchdog_usec_ = 0;
#endif
}

void Watchdog::Notify(const char* state) {
#ifdef KCK_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

// Idle, or a batch that produced a product or finished a step since the
// last tick, is progress.
void Watchdog::Tick(bool busy, uint64_t progress) {
  const auto now = std::chrono::steady_clock::now();
  if (!busy || progress != seen_progress_) {
    seen_progress_ = progress;
    progress_at_ = now;
    stalled_ = false;
  }
  if (now - progress_at_ <= limit_) {
    if (watchdog_usec_) Notify("WATCHDOG=1");
    return;
  }
  if (stalled_) return;
  stalled_ = true;
  spdlog::error("the batch in flight made no progress for {} s, longer than any compute may take; {}",
                std::chrono::duration_cast<std::chrono::seconds>(now - progress_at_).count(),
                watchdog_usec_ ? "no longer pinging the systemd watchdog, which restarts kck"
                               : "restart kck if this persists");
}

}  // namespace kck
