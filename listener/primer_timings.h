// PrimerTimings: what the daemon timed per primer. Its last recompute and
// its last augment budget the fast write (listener/fast_write.cc); its
// shortest and longest chains of augments tell whether a key's changes
// cost less augmented or recomputed (Executor::RecomputeWhereCheaper).
//
// A daemon that starts (or reloads its primers) begins with what the
// daemons before it timed: they publish the timings to kck.primer_stats
// (sql/018_primer_timings.sql) every ten seconds and when they stop, each
// primer's stamped with its definition, so that a primer that changed
// starts over. Without that, a restarted daemon augmented a backlog change
// by change until it had timed two chain lengths.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace kck {

// What augmenting `changes` changes of a key in one chain should take, told
// from a primer's two timed chains (one change counts as a chain of one):
// the shortest and the longest, `short_n` changes in `short_ms` and
// `long_n` in `long_ms`; what a chain costs once (such as rewriting a large
// value) and what each change adds. Negative until two lengths were timed.
double EstimatedChainMs(size_t short_n, double short_ms, size_t long_n, double long_ms, size_t changes);

class PrimerTimings {
 public:
  // Forgets everything (the primers' SQL may have changed).
  void Clear();
  // A recompute of `primer` took `ms`.
  void Computed(const std::string& primer, double ms);
  // An augment of `changes` changes (a chain) took `ms`.
  void Augmented(const std::string& primer, double ms, size_t changes);
  // The compute time its stored products last measured, for a primer not
  // timed otherwise; a primer with augments takes it as its augment time
  // too (a stored compute_ms may be an augment's).
  void SeedFromStored(const std::string& primer, double ms, bool augments);
  // What a daemon published for `primer` (one entry of TakeChanged()'s
  // form); false, and nothing taken, when it is not that form. A primer
  // this daemon timed keeps its own times.
  bool Restore(const std::string& primer, const nlohmann::json& published);

  std::optional<double> compute_ms(const std::string& primer) const;
  std::optional<double> augment_ms(const std::string& primer) const;
  // A chain of `changes` augments' estimated time (EstimatedChainMs), or
  // nullopt until two lengths were timed.
  std::optional<double> ChainMs(const std::string& primer, size_t changes) const;

  // {"<primer>": {"compute_ms", "augment_ms", "short_n", "short_ms",
  // "long_n", "long_ms"}} (each field only when known) of the primers timed
  // since the last call, or nullopt when none was.
  std::optional<nlohmann::json> TakeChanged();
  // Publishing `taken` (what TakeChanged returned) failed: its primers go
  // in the next publish, with what is known of them then.
  void PublishFailed(const nlohmann::json& taken);

 private:
  struct Times {
    std::optional<double> compute_ms;  // its last recompute
    std::optional<double> augment_ms;  // its last augment
    size_t short_n = 0;                // its shortest timed chain ...
    double short_ms = 0;
    size_t long_n = 0;                 // ... and its longest
    double long_ms = 0;
  };
  static nlohmann::json ToJson(const Times& t);

  std::map<std::string, Times> by_primer_;
  std::set<std::string> changed_;  // timed since the last TakeChanged
};

}  // namespace kck
