// Log line formats for `--log-format`: "text" (the default, for people:
// `2026-11-26 09:03:34.123 info message`) and "json" (one JSON object per
// line, for log shippers: {"time": "2026-11-26T09:03:34.123Z", "level":
// "info", "pid": 1234, "message": "..."}; the message is escaped, invalid
// UTF-8 replaced).
#pragma once

#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace kck {

// Sets the default logger's format; false for an unknown name.
bool SetLogFormat(const std::string& name);

// The JSON formatter itself.
std::unique_ptr<spdlog::formatter> JsonLogFormatter();

}  // namespace kck
