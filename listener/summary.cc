#include "listener/summary.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace kck {

void Summary::Add(const BatchStats& stats) {
  window_.Add(stats);
  seconds_[now_].Add(stats);
  changed_ |= stats.changes || stats.keys || stats.errors || stats.removed || stats.unchanged || stats.fresh;
}

void Summary::AddBatch(const BatchStats& stats, std::chrono::steady_clock::duration took) {
  Add(stats);
  if (stats.changes == 0) return;
  spdlog::debug("batch: {} changes, {} products written ({} augmented), {} unchanged, {} already fresh, {} errors "
                "in {:.2f} ms{}",
                stats.changes, stats.keys, stats.augmented, stats.unchanged, stats.fresh, stats.errors,
                std::chrono::duration<double, std::milli>(took).count(),
                stats.fast ? ", computed in the write transaction" : "");
}

void Summary::AddScheduled(const BatchStats& stats) {
  BatchStats scheduled;
  scheduled.keys = stats.keys;
  scheduled.errors = stats.errors;
  Add(scheduled);
}

void Summary::Tick() {
  if (ticks_ < static_cast<int>(seconds_.size())) ++ticks_;
  now_ = (now_ + 1) % seconds_.size();
  seconds_[now_] = {};
  // While the minute holds any work its rates move every second (the
  // window grows, old work leaves it): publish again. An idle minute is
  // published once, as zeros, and then not written again.
  bool any = false;
  for (const auto& b : seconds_) any |= b.changes || b.keys || b.errors || b.removed || b.unchanged || b.fresh;
  changed_ |= any || had_work_;
  had_work_ = any;
}

std::string Summary::Published() {
  BatchStats minute;
  for (const auto& s : seconds_) minute.Add(s);
  changed_ = false;
  return "{\"window_s\": " + std::to_string(std::max(ticks_, 1)) + ", \"changes\": " + std::to_string(minute.changes) +
         ", \"products\": " + std::to_string(minute.keys) + ", \"augmented\": " + std::to_string(minute.augmented) +
         ", \"augment_fallbacks\": " + std::to_string(minute.augment_fallbacks) +
         ", \"unchanged\": " + std::to_string(minute.unchanged) + ", \"fresh\": " + std::to_string(minute.fresh) +
         ", \"removed\": " + std::to_string(minute.removed) + ", \"errors\": " + std::to_string(minute.errors) + "}";
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
