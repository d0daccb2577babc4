// Preparing products ahead (a primer's "warm" SQL): which keys to compute
// before anyone asks, and in what order. Shared by `kck warm` (cli/warm.cc)
// and the daemon's warm-ups (listener/warmer.h).
//
// A product that depends on products reads them from kck.cache, so the keys
// its primer rules name are computed first, each once: the plan is a list
// of levels, the keys of primers that depend on no primer first; a level is
// computed only after the one before it is stored.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "pg/connection.h"
#include "primers/registry.h"

namespace kck {

// The statement that runs a primer's warm SQL: one text column per
// parameter, in declared order, each cast to the parameter's type (so a
// missing or mistyped column fails when it is prepared, at install).
BoundSql WarmStatement(const PrimerSpec& spec);

// The keys of `result` (rows of WarmStatement). Rows with a NULL name no
// product and are skipped.
StatusOr<std::vector<std::string>> WarmKeys(const PrimerSpec& spec, const pg::Result& result);

// The keys of `wanted` (by primer) and, before them, the keys of products
// they depend on, as levels; every key once.
std::vector<std::vector<std::string>> PlanWarm(const Registry& registry,
                                               const std::map<std::string, std::vector<std::string>>& wanted);

}  // namespace kck
