// Small conversions of the text libpq and the worker protocol carry: a
// JSON document that may be NULL, and a decimal number.
#pragma once

#include <nlohmann/json.hpp>

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace kck {

// The JSON `text` holds: null for SQL NULL, a discarded value (is_discarded)
// for text that is not JSON. Never throws.
inline nlohmann::json ParsedJson(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

// The decimal number at the start of `text`; 0 when there is none.
template <typename T>
T ParsedNumber(std::string_view text) {
  T v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

}  // namespace kck
