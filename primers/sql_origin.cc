#include "primers/sql_origin.h"

#include <cstddef>

namespace kck {
namespace {

// PostgreSQL counts characters; a UTF-8 continuation byte starts none.
bool StartsCharacter(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

// The first byte of character `n` (counted from 1) of `text`, or its size
// past the end.
size_t ByteOfCharacter(std::string_view text, int n) {
  int seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (StartsCharacter(text[i]) && ++seen == n) return i;
  }
  return text.size();
}

// The character (counted from 1) that byte `at` of `text` belongs to.
int CharacterOfByte(std::string_view text, size_t at) {
  int n = 0;
  for (size_t i = 0; i <= at && i < text.size(); ++i) n += StartsCharacter(text[i]) ? 1 : 0;
  return n;
}

}  // namespace

std::optional<size_t> SqlOrigin::UserByte(size_t at) const {
  if (at < begin || at >= end) return std::nullopt;
  const size_t rel = at - begin;
  // What to add to an offset of the rewritten text past the edits seen.
  std::ptrdiff_t shift = 0;
  for (const auto& e : edits) {
    if (rel < e.at) break;
    if (rel < e.at + e.size) return e.from;
    shift = static_cast<std::ptrdiff_t>(e.from + e.was) - static_cast<std::ptrdiff_t>(e.at + e.size);
  }
  return static_cast<size_t>(static_cast<std::ptrdiff_t>(rel) + shift);
}

SqlOrigin SqlOrigin::Shifted(size_t by) const {
  SqlOrigin out = *this;
  out.begin += by;
  out.end += by;
  return out;
}

Status InUserSql(const Status& error, std::string_view statement, const std::vector<SqlOrigin>& origins) {
  if (error.position() <= 0) return error;
  const size_t at = ByteOfCharacter(statement, error.position());
  for (const auto& origin : origins) {
    if (auto byte = origin.UserByte(at)) return error.AtPosition(CharacterOfByte(origin.text, *byte));
  }
  return error.AtPosition(0);
}

}  // namespace kck
