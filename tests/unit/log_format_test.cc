// --log-format json (common/log_format.h): one JSON object per line.
#include "common/log_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <spdlog/details/log_msg.h>

#include <string>

namespace kck {
namespace {

std::string Formatted(const std::string& message, spdlog::level::level_enum level) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "kck", level, message);
  spdlog::memory_buf_t buf;
  JsonLogFormatter()->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(JsonLogFormat, OneObjectPerLineWithTheMessageEscaped) {
  const std::string message = "primer \"fragile\": key \"fragile/1\": line one\nline two\t\\";
  const std::string line = Formatted(message, spdlog::level::err);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;  // the message's newline is escaped
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["message"], message);
  EXPECT_EQ(j["level"], "error");
  EXPECT_GT(j["pid"].get<long long>(), 0);
  const std::string time = j["time"];
  ASSERT_EQ(time.size(), 24u) << time;  // 2026-11-26T09:03:34.123Z
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time.back(), 'Z');
}

TEST(JsonLogFormat, InvalidUtf8IsReplacedNotThrown) {
  const std::string line = Formatted(std::string("bad \xff\xfe bytes"), spdlog::level::warn);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_NE(j["message"].get<std::string>().find("bytes"), std::string::npos);
}

TEST(JsonLogFormat, UnknownFormatIsRefused) {
  EXPECT_FALSE(SetLogFormat("yaml"));
  EXPECT_TRUE(SetLogFormat("text"));
}

}  // namespace
}  // namespace kck
