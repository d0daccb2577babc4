// Writer: the end of a batch. Consumes its claimed changes, writes every
// product, error and per-primer counter, deletes the products whose compute
// found nothing, and commits, in one round trip. A value PostgreSQL rejects (a
// jsonb it refuses, a key over the index row limit) must not stop every
// other product: the writes run behind a savepoint, and when they fail for
// a reason that is not transient they are retried one product at a time,
// each behind its own savepoint, and the rejected ones get an error instead.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pg/async_connection.h"
#include "common/task.h"

namespace kck {

struct ProductWrite {
  std::string key, primer, value;
  std::optional<std::string> snapshot;  // nullopt after an augment: keep the last compute's
  double ms = 0;
  std::optional<double> soft, hard;     // expiry in seconds
};

struct ErrorWrite {
  std::string key, error;
};

struct FallbackCount {
  long long count = 0;
  std::string last;  // the last reason, one bounded line
};

struct Writes {
  std::vector<ProductWrite> products;
  std::vector<std::string> deletes;  // keys whose compute found nothing: removed
  std::vector<ErrorWrite> errors;
  std::map<std::string, FallbackCount> fallbacks;  // by primer
};

struct WriteCounts {
  size_t rejected = 0;   // products PostgreSQL refused: moved to writes.errors
  size_t unchanged = 0;  // products whose value was already stored: no new version
};

// What kck.expect_products raises when a key moved since the batch read it
// (sql/010_cheaper_batches.sql): roll back and settle.
inline constexpr std::string_view kProductsMoved = "KCK01";
// kck.expect_products does not exist: the schema is older than version 10.
inline constexpr std::string_view kUndefinedFunction = "42883";
// What kck.expect_generation raises when a kck install changed the primers
// since the daemon loaded them (sql/019_primers_redefined.sql): the batch
// rolls back, and its changes are claimed again once they are reloaded.
inline constexpr std::string_view kPrimersChanged = "KCK03";

// The write transaction's check that the primers are still those of
// registry generation `generation`; after the keys' locks, so that no
// daemon that loaded newer primers can have written one of the keys first
// (nullopt: the schema is older than 19, and nothing is checked).
std::vector<AsyncConnection::Statement> GenerationCheck(std::optional<int64_t> generation);

// Consumes `claim` (unless 0: `opening` consumed it, or there is none; its
// changes are deleted, or the transaction fails with a transient error when
// another daemon consumed some), checks the primers' `generation`
// (GenerationCheck), writes `writes` and COMMITs on `main`, inside the
// batch's write transaction. `opening` goes first in the same round trip
// (BEGIN, the consumption, the keys' locks and their check, when the
// transaction is not open yet). Fails on a transient error, when COMMIT
// fails or when a statement of `opening` or the check fails: the caller
// rolls back.
Task<Status> WriteAndCommit(AsyncConnection& main, int64_t claim, std::optional<int64_t> generation, Writes& writes,
                            WriteCounts* counts, std::vector<AsyncConnection::Statement> opening = {});

}  // namespace kck
