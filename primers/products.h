// Reading and computing products from outside the daemon (kck get,
// kck refresh), with the same rules the Django app follows: a hit is one
// indexed read; a miss computes, stores with a version check and returns;
// past soft_expire the stored value is served and a refresh queued; past
// hard_expire it is recomputed.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "pg/connection.h"
#include "primers/engine.h"
#include "primers/registry.h"

namespace kck {

// Loads the registry from kck.primers.
StatusOr<std::shared_ptr<const Registry>> LoadRegistry(pg::Connection& conn);

class Products {
 public:
  Products(pg::Connection& conn, std::shared_ptr<const Registry> registry)
      : conn_(conn), registry_(std::move(registry)) {}

  // The product's JSON text. Invalid for a bad key or unknown primer;
  // Runtime "product ... does not exist" when its compute has no row.
  StatusOr<std::string> Get(std::string_view key);
  // Recomputes and stores the product now; returns its new version. A
  // compute with no row removes the stored product and fails like Get.
  StatusOr<long long> Refresh(std::string_view key);
  // Ok when `key` names a registered primer and is canonical: what Get and
  // Refresh check first, so a command can check all its keys before it
  // acts on any.
  Status Check(std::string_view key) { return Resolve(key).status(); }

 private:
  // Checks the key; returns its primer and parameter values.
  StatusOr<std::pair<const Primer*, std::vector<std::string>>> Resolve(std::string_view key);
  // One compute (SQL, or an import's fetch) of the key's values.
  StatusOr<Computed> Compute(const Primer& primer, const std::vector<std::string>& values, const std::string& where);
  // Computes under the key's lock and stores unless the version moved.
  StatusOr<std::pair<std::string, long long>> ComputeAndStore(std::string_view key, const Primer& primer,
                                                              const std::vector<std::string>& values, bool force);
  // Removes `key` and commits: its compute found nothing. Returns the error.
  Status Gone(const std::string& key, const Primer& primer);

  pg::Connection& conn_;
  std::shared_ptr<const Registry> registry_;
};

}  // namespace kck
