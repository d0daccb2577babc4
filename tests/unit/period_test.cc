#include "primers/period.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace kck {
namespace {

using std::chrono::seconds;

TEST(Period, ParsesEachUnit) {
  const std::pair<const char*, int64_t> kCases[] = {
      {"90s", 90}, {"10m", 600}, {"1h", 3600}, {"1d", 86400}, {"1s", 1}, {"007m", 420},
      {"36500d", 36500LL * 86400}, {"3153600000s", 3153600000LL},
  };
  for (const auto& [text, secs] : kCases) {
    StatusOr<seconds> period = ParsePeriod(text);
    ASSERT_TRUE(period.ok()) << text << ": " << period.status().message();
    EXPECT_EQ(period->count(), secs) << text;
  }
}

TEST(Period, RejectsAnythingElse) {
  for (const char* text : {"0s", "0d", "000m", "", "10", "s", "1.5h", "-1m", "+1m", "1w", " 1m", "1m ",
                           "1 m", "1M", "1ms", "1hh", "1h30m", "0x10s", "1e3s", "٣s"}) {
    StatusOr<seconds> period = ParsePeriod(text);
    ASSERT_FALSE(period.ok()) << text;
    EXPECT_EQ(period.status().kind(), Status::Kind::kInvalid);
  }
  EXPECT_EQ(ParsePeriod("1w").status().message(),
            "period \"1w\" is not valid (expected a positive number followed by s, m, h or d)");
}

TEST(Period, RejectsOverflow) {
  for (const char* text : {"36501d", "3153600001s", "876001h", "9223372036854775807s",
                           "9223372036854775808s", "99999999999999999999999d", "153722867280912931m"}) {
    StatusOr<seconds> period = ParsePeriod(text);
    ASSERT_FALSE(period.ok()) << text;
    EXPECT_EQ(period.status().message(), "period \"" + std::string(text) + "\" is too long (at most 36500d)");
  }
}

TEST(Period, FormatsInLargestExactUnit) {
  EXPECT_EQ(FormatPeriod(seconds(600)), "10m");
  EXPECT_EQ(FormatPeriod(seconds(90)), "90s");
  EXPECT_EQ(FormatPeriod(seconds(3600)), "1h");
  EXPECT_EQ(FormatPeriod(seconds(5400)), "90m");
  EXPECT_EQ(FormatPeriod(seconds(86400)), "1d");
  EXPECT_EQ(FormatPeriod(seconds(90000)), "25h");
  EXPECT_EQ(FormatPeriod(seconds(86401)), "86401s");
  EXPECT_EQ(FormatPeriod(seconds(0)), "0s");
}

TEST(Period, FormatThenParseRoundTrips) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    seconds period(1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(kMaxPeriod.count())));
    if (i % 2 == 0) period = seconds(period.count() / 60 * 60 + 60);  // whole minutes and more
    if (period > kMaxPeriod) continue;
    StatusOr<seconds> parsed = ParsePeriod(FormatPeriod(period));
    ASSERT_TRUE(parsed.ok()) << FormatPeriod(period);
    EXPECT_EQ(*parsed, period);
  }
}

}  // namespace
}  // namespace kck
