// pg::ArrayLiteral: text[] literals for bound parameters.
#include <gtest/gtest.h>

#include "pg/connection.h"

namespace kck {
namespace {

TEST(ArrayLiteral, QuotesEveryElementAndEscapesQuotesAndBackslashes) {
  EXPECT_EQ(pg::ArrayLiteral(std::vector<std::optional<std::string>>{"a\"b", std::nullopt, "c\\d", "", "NULL", "{x,y}"}),
            R"({"a\"b",NULL,"c\\d","","NULL","{x,y}"})");
  EXPECT_EQ(pg::ArrayLiteral(std::vector<std::string>{}), "{}");
  const std::string big(1 << 20, '"');
  EXPECT_EQ(pg::ArrayLiteral(std::vector<std::string>{big}).size(), 2 * big.size() + 4);
}

}  // namespace
}  // namespace kck
