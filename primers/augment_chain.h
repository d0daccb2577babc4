// Several changes of one key applied by one statement. Each change's augment
// SQL reads, as :value, the value the change before it produced (one
// MATERIALIZED CTE per change, so a value read several times is computed
// once; to_jsonb, as for a single augment, so any type the SQL returns
// becomes the next :value; each ends on a new line, so a trailing comment
// in augment SQL comments out nothing of the statement around it), and the
// statement returns only the last. A large product then
// crosses the connection, and is parsed and printed, once per batch instead
// of once per change.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "primers/engine.h"
#include "primers/registry.h"

namespace kck {

struct AugmentStatement {
  std::string sql;
  std::vector<std::optional<std::string>> params;  // $1, $2, ...
  std::vector<SqlOrigin> origins;                  // each change's augment SQL in `sql`
};

// `current` with `changes` applied in order, by `primer`'s augment SQL (each
// change must have some: Primer::Augments). `key_values` are the key's
// parameters (Primer::KeyValues). The result is one row: the JSON text, or
// NULL when some augment produced no value.
StatusOr<AugmentStatement> ChainAugments(const Primer& primer, const NamedValues& key_values,
                                         const std::vector<ChangeImage>& changes, const std::string& current);

// The fast write (listener/fast_write.cc) of `key`'s one change, whose
// transaction is `txid`, under the key's lock: `change` applied to the stored
// value unless the snapshot of its last compute shows it, and written as an
// augment is (a new version only for a new value, that snapshot kept, the
// expiry `soft`/`hard` seconds from now). One row: stored rows (0 or 1),
// rows written, whether the value stayed the same, milliseconds. A stored
// value that is NULL, or an augment that gives none, fails the statement
// (SQLSTATE KCK02): the normal path then recomputes the key.
StatusOr<AugmentStatement> AugmentWrite(const Primer& primer, const NamedValues& key_values, const ChangeImage& change,
                                        const std::string& txid, const std::string& key,
                                        const std::optional<std::string>& soft, const std::optional<std::string>& hard);

}  // namespace kck
