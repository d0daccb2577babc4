// The SQL files of sql/, compiled into the binary (see cmake/embed_sql.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace kck::sql {

struct EmbeddedFile {
  std::string_view name;  // file name, e.g. "001_schema.sql"
  std::string_view text;
};

// All sql/*.sql files, sorted by name.
const std::vector<EmbeddedFile>& EmbeddedFiles();

// The text of one embedded file; aborts if it does not exist (a build error).
std::string_view File(std::string_view name);

}  // namespace kck::sql
