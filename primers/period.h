// Periods in primer config: "90s", "10m", "1h", "1d" (DESIGN.md, "Primer config").
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kck {

// Longest period accepted: 100 years, so that now + period fits any clock.
inline constexpr std::chrono::seconds kMaxPeriod{36500LL * 24 * 60 * 60};

// A positive decimal number directly followed by one unit: s, m, h or d.
// Nothing else is accepted: no sign, spaces, fractions, other units or
// periods above kMaxPeriod. The error names the text:
//   period "1w" is not valid (expected a positive number followed by s, m, h or d)
StatusOr<std::chrono::seconds> ParsePeriod(std::string_view text);

// `period` in the largest unit that divides it exactly: 600s -> "10m",
// 90s -> "90s", 0s -> "0s". ParsePeriod(FormatPeriod(p)) == p for valid p.
std::string FormatPeriod(std::chrono::seconds period);

}  // namespace kck
