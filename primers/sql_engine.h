// SQL primers: `compute` and `augment` SQL with their :name parameters
// bound, run on a connection outside any batch transaction (the daemon's
// compute connection, with statement_timeout).
#pragma once

#include <map>
#include <string_view>
#include <vector>

#include "pg/async_connection.h"
#include "primers/engine.h"

namespace kck {

class SqlEngine : public Engine {
 public:
  explicit SqlEngine(AsyncConnection& conn) : conn_(conn) {}

  Task<StatusOr<Computed>> Compute(const Primer& primer, const std::string& key) override;
  Task<StatusOr<std::optional<std::string>>> Augment(const Primer& primer, const std::string& key,
                                                     const ChangeImage& change, const std::string& current) override;
  // Up to kMaxChain changes in one statement (primers/augment_chain.h).
  Task<StatusOr<std::optional<std::string>>> AugmentAll(const Primer& primer, const std::string& key,
                                                        std::vector<ChangeImage> changes,
                                                        std::string current) override;
  static constexpr size_t kMaxChain = 100;
  // The keys to recompute of SQL primers, all in one round trip: one
  // statement per primer (primer.compute_many for several keys, its compute
  // for one), into *out. A statement that fails adds nothing: its keys are
  // then computed one by one, so each error lands on its own key. Each
  // key's time is the round trip's share.
  // With them, in the same round trip, `augments`: keys each augmented by
  // one change, into *augmented (the value; no snapshot: an augment keeps
  // the last compute's). A failing one adds nothing: that key is then
  // augmented alone, which records its fallback.
  using KeysByPrimer = std::map<const Primer*, std::vector<std::string>>;
  struct OneAugment {
    const Primer* primer;
    std::string key;
    ChangeImage change;
    std::string_view current;  // the stored value, which outlives the call
  };
  Task<void> ComputeAhead(const KeysByPrimer& keys, const std::vector<OneAugment>& augments,
                          std::map<std::string, Computed>* out, std::map<std::string, Computed>* augmented);

 private:
  AsyncConnection& conn_;
};

}  // namespace kck
