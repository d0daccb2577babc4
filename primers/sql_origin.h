// Where a user's SQL (compute, keys, augment, warm) sits in a statement kck
// sends. kck wraps it and replaces its :name placeholders, so a position
// PostgreSQL gives for an error counts characters of the statement, not of
// what the user wrote; an origin tells one from the other.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kck {

// A placeholder that a rewrite replaced, by byte offsets.
struct SqlEdit {
  size_t at;    // where its replacement starts in the rewritten text
  size_t size;  // the replacement's length
  size_t from;  // where the placeholder starts in the text as written
  size_t was;   // the placeholder's length
};

struct SqlOrigin {
  std::string text;            // the user's SQL as written
  size_t begin = 0, end = 0;   // the bytes of the statement that hold it, rewritten
  std::vector<SqlEdit> edits;  // their `at` counted from `begin`
  // The byte of `text` that byte `at` of the statement came from (a byte of
  // a placeholder's replacement: the placeholder's first); none outside
  // [begin, end).
  std::optional<size_t> UserByte(size_t at) const;
  // The same text, `by` bytes further into a statement that embeds it.
  SqlOrigin Shifted(size_t by) const;
};

// `error`, from running `statement`, placed in the user's SQL the statement
// holds: the position PostgreSQL gave becomes a character of the text of
// the origin that holds it, and is dropped when it falls in kck's wrapping.
// An error without a position is returned as it is.
Status InUserSql(const Status& error, std::string_view statement, const std::vector<SqlOrigin>& origins);

}  // namespace kck
