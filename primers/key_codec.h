// Keys: the one text form of "primer name + parameter values" (DESIGN.md, "Keys").
//
// A key is `name/p1/p2...`: the primer's name, then its parameters in declared
// order, each after a '/'. A primer without parameters has the key `name`. In a
// str value '%' is written "%25" and '/' is written "%2F"; no other escape exists.
// Every value has exactly one text form, so equal products have equal keys: a
// key that is not canonical is rejected, never repaired.
//
// tests/key_vectors.json holds the vectors that every implementation of this
// codec (this one, the Django app's) must agree on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/quote.h"
#include "common/status.h"

namespace kck {

enum class ParamType { kInt, kStr, kBool, kDate };

struct ParamSpec {
  std::string name;
  ParamType type;
};

// "int", "str", "bool" or "date"; anything else is Invalid and names the text.
StatusOr<ParamType> ParseParamType(std::string_view text);
// The config spelling of `type` ("int", ...).
std::string_view ParamTypeName(ParamType type);

// Ok when `name` matches [a-z_][a-z0-9_]* and is at most 63 bytes (a
// PostgreSQL identifier, so it can name things in SQL without quoting).
Status ValidatePrimerName(std::string_view name);

// The primer name of a key: the text before the first '/', or the whole key.
// Invalid when that text is not a valid primer name (including empty).
StatusOr<std::string> KeyPrimerName(std::string_view key);

// Ok when `text` is the canonical text of a value of `param.type`. `text` is a
// value, not a key part: it is unescaped, so a str may hold '/' and '%'.
//   int:  64-bit signed decimal; no '+', no leading zeros, no "-0", no spaces
//   bool: "true" or "false"
//   date: YYYY-MM-DD, a real calendar date, year 0001..9999
//   str:  valid UTF-8 without NUL bytes (may be empty)
// The error names primer and parameter:
//   primer "title_list": parameter "author_id" expects int, got "05"
Status CheckCanonical(std::string_view primer, const ParamSpec& param, std::string_view text);

// The longest key, in bytes, that any entry point accepts: keys are the
// primary key of kck.cache, and a btree index row holds at most ~2700 bytes.
inline constexpr size_t kMaxKeyBytes = 2048;

// Splits `key` into the values of `params` (in declared order), unescaped.
// Invalid when the key names another primer, has another number of parts, a
// value is not canonical, or a str part is not canonically escaped ('%' not
// followed by "25" or "2F"). '%' is never valid in int, bool or date parts.
// An int written with a sign or leading zeros is named with the key's
// canonical form:
//   primer "title_list": parameter "author_id" is written "2" in its
//   canonical form, not "02" (key "title_list/2")
StatusOr<std::vector<std::string>> DecodeKey(std::string_view key, std::string_view primer,
                                             const std::vector<ParamSpec>& params);

// The canonical key of `values` (one per param, canonical text, unescaped).
// Invalid when the primer name is not valid, the count differs, or a value is
// not canonical (see CheckCanonical).
StatusOr<std::string> EncodeKey(std::string_view primer, const std::vector<ParamSpec>& params,
                                const std::vector<std::string>& values);

// `value` with '%' written "%25" and '/' written "%2F". Does not validate.
std::string EscapeKeyPart(std::string_view value);


}  // namespace kck
