#include "listener/summary.h"

#include <spdlog/spdlog.h>

namespace kck {

void Summary::AddBatch(const BatchStats& stats, std::chrono::steady_clock::duration took) {
  window_.changes += stats.changes;
  window_.keys += stats.keys;
  window_.augmented += stats.augmented;
  window_.removed += stats.removed;
  window_.errors += stats.errors;
  window_.augment_fallbacks += stats.augment_fallbacks;
  window_.unchanged += stats.unchanged;
  window_.fresh += stats.fresh;
  if (stats.changes == 0) return;
  spdlog::debug("batch: {} changes, {} products written ({} augmented), {} unchanged, {} already fresh, {} errors "
                "in {:.2f} ms",
                stats.changes, stats.keys, stats.augmented, stats.unchanged, stats.fresh, stats.errors,
                std::chrono::duration<double, std::milli>(took).count());
}

void Summary::AddScheduled(const BatchStats& stats) {
  window_.keys += stats.keys;
  window_.errors += stats.errors;
}

void Summary::Log() {
  const BatchStats& w = window_;
  if (w.changes || w.keys || w.errors || w.removed || w.unchanged || w.fresh) {
    spdlog::info("last 10s: {} changes applied, {} products written ({} augmented, {} augments fell back), {} "
                 "unchanged, {} already fresh, {} removed (computed nothing), {} compute errors",
                 w.changes, w.keys, w.augmented, w.augment_fallbacks, w.unchanged, w.fresh, w.removed, w.errors);
  }
  window_ = {};
}

}  // namespace kck
