// Named placeholders in primer SQL (`:author_id`, `:old`, `:value`) turned
// into bound positional parameters ($1, $2, ...), so user values are never
// spliced into SQL text.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "primers/sql_origin.h"

namespace kck {

struct NamedParam {
  std::string name;
  std::string sql_type;  // cast applied to the placeholder, e.g. "bigint", "jsonb"
};

struct BoundSql {
  std::string sql;                 // with $n::type in place of :name
  std::vector<std::string> order;  // order[i] is the name bound to $(i+1)
  SqlOrigin origin;                // where the SQL as written sits in `sql`
};

// Replaces each `:name` with replace(name), skipping string literals,
// quoted identifiers, dollar quotes, comments and `::` casts. Each
// replacement is noted in *edits when given.
StatusOr<std::string> RewriteNamedParams(std::string_view sql,
                                         const std::function<StatusOr<std::string>(const std::string&)>& replace,
                                         std::vector<SqlEdit>* edits = nullptr);

// Replaces each `:name` that is a declared param with `$n::type` (one $n per
// distinct name, numbered in order of `declared`), skipping string
// literals, quoted identifiers, dollar quotes, comments and `::` casts. An
// undeclared `:name` is an error naming it.
StatusOr<BoundSql> BindNamedParams(std::string_view sql, const std::vector<NamedParam>& declared);

// SQL without placeholders, as written.
BoundSql Verbatim(std::string_view sql);

// `sql` inside a statement: `before`, sql.sql, `after`; its origin moves along.
BoundSql Embedded(std::string_view before, BoundSql sql, std::string_view after);

// `error`, from running sql.sql, placed in the SQL as written (InUserSql).
Status InUserSql(const Status& error, const BoundSql& sql);

}  // namespace kck
