#include "primers/period.h"

#include <charconv>
#include <cstdint>

#include "primers/key_codec.h"

namespace kck {
namespace {

struct Unit {
  char suffix;
  int64_t seconds;
};
// Largest first, for FormatPeriod.
constexpr Unit kUnits[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

}  // namespace

StatusOr<std::chrono::seconds> ParsePeriod(std::string_view text) {
  auto not_valid = [&] {
    return Status::Invalid("period " + QuoteForError(text) +
                           " is not valid (expected a positive number followed by s, m, h or d)");
  };
  if (text.size() < 2) return not_valid();
  std::string_view digits = text.substr(0, text.size() - 1);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (text.back() == u.suffix) unit = &u;
  }
  if (unit == nullptr) return not_valid();
  for (char c : digits) {
    if (c < '0' || c > '9') return not_valid();
  }
  // All digits, so from_chars can only fail by overflow.
  int64_t count = 0;
  std::errc ec = std::from_chars(digits.data(), digits.data() + digits.size(), count).ec;
  if (ec == std::errc() && count == 0) return not_valid();
  if (ec != std::errc() || count > kMaxPeriod.count() / unit->seconds) {
    return Status::Invalid("period " + QuoteForError(text) + " is too long (at most " +
                           FormatPeriod(kMaxPeriod) + ")");
  }
  return std::chrono::seconds(count * unit->seconds);
}

std::string FormatPeriod(std::chrono::seconds period) {
  int64_t s = period.count();
  for (const Unit& u : kUnits) {
    if (s != 0 && s % u.seconds == 0) return std::to_string(s / u.seconds) + u.suffix;
  }
  return "0s";
}

}  // namespace kck
