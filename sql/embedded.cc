#include "sql/embedded.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace kck::sql {

std::string_view File(std::string_view name) {
  for (const auto& f : EmbeddedFiles()) {
    if (f.name == name) return f.text;
  }
  std::fprintf(stderr, "kck: embedded sql file %s is missing\n", std::string(name).c_str());
  std::abort();
}

}  // namespace kck::sql
