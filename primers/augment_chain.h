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
};

// `current` with `changes` applied in order, by `primer`'s augment SQL (each
// change must have some: Primer::Augments). `key_values` are the key's
// parameters (Primer::KeyValues). The result is one row: the JSON text, or
// NULL when some augment produced no value.
StatusOr<AugmentStatement> ChainAugments(const Primer& primer, const NamedValues& key_values,
                                         const std::vector<ChangeImage>& changes, const std::string& current);

}  // namespace kck
