#include "primers/key_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace kck {
namespace {

// Passes when `text` contains `part`; prints both when it does not.
::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// ---- shared vectors (tests/key_vectors.json, also read by the Python codec) ----

struct Vectors {
  nlohmann::json valid;
  nlohmann::json invalid;
};

const Vectors& LoadVectors() {
  static const Vectors vectors = [] {
    std::ifstream in(KCK_SOURCE_DIR "/tests/key_vectors.json");
    EXPECT_TRUE(in) << "cannot open tests/key_vectors.json";
    nlohmann::json doc = nlohmann::json::parse(in);
    return Vectors{doc.at("valid"), doc.at("invalid")};
  }();
  return vectors;
}

std::vector<ParamSpec> SpecsOf(const nlohmann::json& params) {
  std::vector<ParamSpec> specs;
  for (const auto& p : params) {
    StatusOr<ParamType> type = ParseParamType(p.at("type").get<std::string>());
    EXPECT_TRUE(type.ok()) << type.status().message();
    specs.push_back({p.at("name").get<std::string>(), type.ok() ? *type : ParamType::kStr});
  }
  return specs;
}

TEST(KeyVectors, EnoughOfEach) {
  EXPECT_GE(LoadVectors().valid.size(), 25u);
  EXPECT_GE(LoadVectors().invalid.size(), 25u);
}

TEST(KeyVectors, ValidRoundTrip) {
  for (const auto& v : LoadVectors().valid) {
    std::string primer = v.at("primer");
    std::string key = v.at("key");
    auto values = v.at("values").get<std::vector<std::string>>();
    std::vector<ParamSpec> specs = SpecsOf(v.at("params"));
    SCOPED_TRACE("key " + QuoteForError(key));

    StatusOr<std::string> encoded = EncodeKey(primer, specs, values);
    ASSERT_TRUE(encoded.ok()) << encoded.status().message();
    EXPECT_EQ(*encoded, key);
    StatusOr<std::vector<std::string>> decoded = DecodeKey(key, primer, specs);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    EXPECT_EQ(*decoded, values);
    StatusOr<std::string> name = KeyPrimerName(key);
    ASSERT_TRUE(name.ok()) << name.status().message();
    EXPECT_EQ(*name, primer);
  }
}

TEST(KeyVectors, InvalidRejected) {
  for (const auto& v : LoadVectors().invalid) {
    std::string primer = v.at("primer");
    std::string key = v.at("key");
    SCOPED_TRACE("key " + QuoteForError(key));
    StatusOr<std::vector<std::string>> decoded = DecodeKey(key, primer, SpecsOf(v.at("params")));
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().kind(), Status::Kind::kInvalid);
    const std::string& message = decoded.status().message();
    EXPECT_EQ(message.rfind("primer \"" + primer + "\": ", 0), 0u) << message;
    EXPECT_TRUE(Contains(message, v.at("error_contains").get<std::string>()));
  }
}

// ---- the pieces ----

TEST(ParamTypes, ParseAndName) {
  for (ParamType t : {ParamType::kInt, ParamType::kStr, ParamType::kBool, ParamType::kDate}) {
    StatusOr<ParamType> parsed = ParseParamType(ParamTypeName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  for (const char* bad : {"", "Int", "integer", "string", "text", "timestamp", " int"}) {
    StatusOr<ParamType> parsed = ParseParamType(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(Contains(parsed.status().message(), "\"" + std::string(bad) + "\""));
  }
  EXPECT_EQ(ParseParamType("float").status().message(),
            "parameter type \"float\" is not valid (expected int, str, bool or date)");
}

TEST(PrimerNames, Validate) {
  const std::vector<std::string> kGood{"a", "_", "title_list", "_x9", "a1_b2", std::string(63, 'z')};
  for (const std::string& good : kGood) {
    EXPECT_TRUE(ValidatePrimerName(good).ok()) << good;
  }
  const std::vector<std::string> kBad{"",    "1a",  "Title", "title-list", "title list", "t\xc3\xa9",
                                      "a/b", "a.b", std::string(64, 'z'), std::string("a\0b", 3)};
  for (const std::string& bad : kBad) {
    Status s = ValidatePrimerName(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(Contains(s.message(), "primer name " + QuoteForError(bad) + " is not valid"));
  }
}

TEST(PrimerNames, OfKey) {
  EXPECT_EQ(*KeyPrimerName("title_list/5"), "title_list");
  EXPECT_EQ(*KeyPrimerName("all_books"), "all_books");
  EXPECT_EQ(*KeyPrimerName("search//"), "search");
  for (const char* bad : {"", "/5", "Title/5", "a%2Fb"}) {
    StatusOr<std::string> name = KeyPrimerName(bad);
    ASSERT_FALSE(name.ok()) << bad;
    EXPECT_TRUE(Contains(name.status().message(), "key \"" + std::string(bad) + "\""));
  }
}

TEST(CheckCanonical, MessageNamesPrimerAndParameter) {
  Status s = CheckCanonical("title_list", {"author_id", ParamType::kInt}, "05");
  EXPECT_EQ(s.message(), "primer \"title_list\": parameter \"author_id\" expects int, got \"05\"");
  s = CheckCanonical("title_list", {"author_id", ParamType::kInt}, "9223372036854775808");
  EXPECT_EQ(s.message(),
            "primer \"title_list\": parameter \"author_id\" expects int, got "
            "\"9223372036854775808\" (out of 64-bit range)");
  s = CheckCanonical("by_day", {"day", ParamType::kDate}, "2023-02-29");
  EXPECT_TRUE(Contains(s.message(),
                       "primer \"by_day\": parameter \"day\" expects date, got \"2023-02-29\""));
  s = CheckCanonical("in_stock", {"available", ParamType::kBool}, "say \"yes\"\n");
  EXPECT_EQ(s.message(),
            "primer \"in_stock\": parameter \"available\" expects bool, got \"say \\\"yes\\\"\\x0a\"");
}

TEST(CheckCanonical, StrIsUtf8WithoutNul) {
  ParamSpec spec{"q", ParamType::kStr};
  for (std::string good : {std::string(), std::string("plain"), std::string("\x7f\x01"),
                           std::string("\xc2\x80"), std::string("\xdf\xbf"), std::string("\xe0\xa0\x80"),
                           std::string("\xed\x9f\xbf"), std::string("\xee\x80\x80"),
                           std::string("\xef\xbf\xbf"), std::string("\xf0\x90\x80\x80"),
                           std::string("\xf4\x8f\xbf\xbf")}) {
    EXPECT_TRUE(CheckCanonical("p", spec, good).ok()) << QuoteForError(good);
  }
  for (std::string bad : {
           std::string("\x80"),              // lone continuation byte
           std::string("\xc0\x80"),          // overlong NUL
           std::string("\xc1\xbf"),          // overlong
           std::string("\xe0\x80\x80"),      // overlong
           std::string("\xed\xa0\x80"),      // surrogate
           std::string("\xf0\x80\x80\x80"),  // overlong
           std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
           std::string("\xf5\x80\x80\x80"),
           std::string("\xff"),
           std::string("ab\xc3"),          // cut short
           std::string("\xe2\x82"),        // cut short
           std::string("\xc3\x28"),        // bad continuation
       }) {
    Status s = CheckCanonical("p", spec, bad);
    ASSERT_FALSE(s.ok()) << QuoteForError(bad);
    EXPECT_TRUE(Contains(s.message(), "primer \"p\": parameter \"q\" expects str, got invalid UTF-8"));
  }
  Status s = CheckCanonical("p", spec, std::string("a\0b", 3));
  EXPECT_EQ(s.message(), "primer \"p\": parameter \"q\" expects str, got a NUL byte at offset 1");
}

TEST(EncodeKey, RejectsBadInput) {
  std::vector<ParamSpec> specs{{"author_id", ParamType::kInt}, {"title", ParamType::kStr}};
  EXPECT_EQ(EncodeKey("book", specs, {"5"}).status().message(),
            "primer \"book\": got 1 value, expected 2 (author_id, title)");
  EXPECT_TRUE(Contains(EncodeKey("book", specs, {"+5", "x"}).status().message(),
                       "parameter \"author_id\" expects int, got \"+5\""));
  EXPECT_TRUE(Contains(EncodeKey("Book", specs, {"5", "x"}).status().message(),
                       "primer name \"Book\" is not valid"));
  EXPECT_EQ(*EncodeKey("book", specs, {"5", "a/b%"}), "book/5/a%2Fb%25");
}

TEST(DecodeKey, CountMessage) {
  std::vector<ParamSpec> specs{{"author_id", ParamType::kInt}};
  EXPECT_EQ(DecodeKey("title_list/1/2", "title_list", specs).status().message(),
            "primer \"title_list\": key \"title_list/1/2\" has 2 parameters, expected 1 (author_id)");
  EXPECT_EQ(DecodeKey("all/", "all", {}).status().message(),
            "primer \"all\": key \"all/\" has 1 parameter, expected 0");
  EXPECT_EQ(DecodeKey("search/%2f", "search", {{"query", ParamType::kStr}}).status().message(),
            "primer \"search\": parameter \"query\" has invalid escape \"%2f\" in key \"search/%2f\" "
            "(only %25 and %2F are allowed)");
}

// An int written with a sign or leading zeros names the key's canonical
// form; text that is no int at all still says what the parameter expects.
TEST(DecodeKey, AnIntWrittenOtherwiseIsNamedWithTheCanonicalKey) {
  std::vector<ParamSpec> specs{{"author_id", ParamType::kInt}, {"title", ParamType::kStr}, {"year", ParamType::kInt}};
  EXPECT_EQ(DecodeKey("shelf/02/a%2Fb/-0", "shelf", specs).status().message(),
            "primer \"shelf\": parameter \"author_id\" is written \"2\" in its canonical form, not \"02\" "
            "(key \"shelf/2/a%2Fb/0\")");
  EXPECT_EQ(DecodeKey("shelf/2/x/+2024", "shelf", specs).status().message(),
            "primer \"shelf\": parameter \"year\" is written \"2024\" in its canonical form, not \"+2024\" "
            "(key \"shelf/2/x/2024\")");
  EXPECT_EQ(DecodeKey("shelf/2x/x/1", "shelf", specs).status().message(),
            "primer \"shelf\": parameter \"author_id\" expects int, got \"2x\"");
  EXPECT_EQ(DecodeKey("shelf/099999999999999999999/x/1", "shelf", specs).status().message(),
            "primer \"shelf\": parameter \"author_id\" expects int, got \"099999999999999999999\"");
}

TEST(EscapeKeyPart, EscapesPercentThenSlash) {
  EXPECT_EQ(EscapeKeyPart(""), "");
  EXPECT_EQ(EscapeKeyPart("%2F/"), "%252F%2F");
  EXPECT_EQ(EscapeKeyPart("a%/b"), "a%25%2Fb");
  EXPECT_EQ(EscapeKeyPart("\xff"), "\xff");  // no validation
}

TEST(QuoteForError, StaysOneLineOfUtf8) {
  EXPECT_EQ(QuoteForError(""), "\"\"");
  EXPECT_EQ(QuoteForError("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(QuoteForError("a\"b\\c\n\xff"), "\"a\\\"b\\\\c\\x0a\\xff\"");
  std::string quoted = QuoteForError(std::string(1000, 'x'));
  EXPECT_LT(quoted.size(), 100u);
  EXPECT_EQ(quoted.substr(quoted.size() - 4), "\"...");
  // A cut never splits a UTF-8 sequence.
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "\xe2\x82\xac";
  quoted = QuoteForError(euros);
  EXPECT_TRUE(CheckCanonical("p", {"q", ParamType::kStr}, quoted).ok());
}

// ---- properties: random canonical values round-trip, mutations are rejected ----

class RandomValues {
 public:
  explicit RandomValues(uint64_t seed) : rng_(seed) {}

  int Below(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }

  std::string Int() {
    switch (Below(4)) {
      case 0: return std::to_string(static_cast<int64_t>(rng_()));
      case 1: return std::to_string(Below(2001) - 1000);
      case 2: return std::to_string(std::numeric_limits<int64_t>::min() + Below(3));
      default: return std::to_string(std::numeric_limits<int64_t>::max() - Below(3));
    }
  }

  std::string Bool() { return Below(2) ? "true" : "false"; }

  std::string Date() {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = Below(4) == 0 ? 4 * (1 + Below(2499)) : 1 + Below(9999);  // many leap years
    int month = 1 + Below(12);
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int day = 1 + Below(kDays[month - 1] + (month == 2 && leap ? 1 : 0));
    char text[32];
    std::snprintf(text, sizeof text, "%04d-%02d-%02d", year, month, day);
    return text;
  }

  // Rich in the characters the escaping is about, plus any Unicode scalar.
  std::string Str() {
    static constexpr char kTricky[] = {'/', '%', '2', '5', 'F', 'f', 'a', ' ', '"', '\'', '\\', ';', '-'};
    std::string s;
    int length = Below(12);
    for (int i = 0; i < length; ++i) {
      if (Below(3) > 0) {
        s += kTricky[Below(sizeof kTricky)];
        continue;
      }
      uint32_t cp;
      do {
        cp = Below(2) ? 1 + Below(0x7FF) : 1 + static_cast<uint32_t>(rng_() % 0x10FFFF);
      } while (cp >= 0xD800 && cp <= 0xDFFF);
      AppendUtf8(s, cp);
    }
    return s;
  }

  std::string Of(ParamType type) {
    switch (type) {
      case ParamType::kInt: return Int();
      case ParamType::kStr: return Str();
      case ParamType::kBool: return Bool();
      case ParamType::kDate: return Date();
    }
    return "";
  }

 private:
  static void AppendUtf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::mt19937_64 rng_;
};

constexpr int kRounds = 2000;

TEST(KeyProperties, RandomValuesRoundTrip) {
  RandomValues random(20240229);
  for (ParamType type : {ParamType::kInt, ParamType::kStr, ParamType::kBool, ParamType::kDate}) {
    std::vector<ParamSpec> specs{{"v", type}};
    for (int i = 0; i < kRounds; ++i) {
      std::vector<std::string> values{random.Of(type)};
      StatusOr<std::string> key = EncodeKey("prop", specs, values);
      ASSERT_TRUE(key.ok()) << key.status().message();
      StatusOr<std::vector<std::string>> decoded = DecodeKey(*key, "prop", specs);
      ASSERT_TRUE(decoded.ok()) << decoded.status().message();
      ASSERT_EQ(*decoded, values) << QuoteForError(*key);
    }
  }
}

TEST(KeyProperties, RandomMixedKeysRoundTrip) {
  RandomValues random(7);
  const ParamType kTypes[] = {ParamType::kInt, ParamType::kStr, ParamType::kBool, ParamType::kDate};
  for (int i = 0; i < kRounds; ++i) {
    std::vector<ParamSpec> specs;
    std::vector<std::string> values;
    for (int n = random.Below(5); n > 0; --n) {
      specs.push_back({"p" + std::to_string(specs.size()), kTypes[random.Below(4)]});
      values.push_back(random.Of(specs.back().type));
    }
    StatusOr<std::string> key = EncodeKey("mixed", specs, values);
    ASSERT_TRUE(key.ok()) << key.status().message();
    StatusOr<std::vector<std::string>> decoded = DecodeKey(*key, "mixed", specs);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    ASSERT_EQ(*decoded, values) << QuoteForError(*key);
  }
}

// Non-canonical spellings of the key part `part` (a canonical `type` value, as written in a key).
std::vector<std::string> Mutations(ParamType type, const std::string& part, RandomValues& random) {
  std::vector<std::string> out;
  switch (type) {
    case ParamType::kInt:
      if (part[0] == '-') {
        out.push_back("-0" + part.substr(1));
      } else {
        out.push_back("0" + part);
        out.push_back("+" + part);
      }
      out.push_back("-0");
      out.push_back(" " + part);
      out.push_back(part + " ");
      out.push_back("%3" + std::string(1, part.back()));
      out.push_back(part + ".0");
      break;
    case ParamType::kStr: {
      out.push_back(part + "%");
      out.push_back(part + "%2");
      // Canonical escapes are whole tokens, so "%41" or "%2f" inserted anywhere (even
      // inside an escape) leaves an invalid escape.
      size_t at = static_cast<size_t>(random.Below(static_cast<int>(part.size()) + 1));
      out.push_back(part.substr(0, at) + "%41" + part.substr(at));
      out.push_back(part.substr(0, at) + "%2f" + part.substr(at));
      for (size_t i = part.find("%2F"); i != std::string::npos; i = part.find("%2F", i + 1)) {
        out.push_back(part.substr(0, i) + "%2f" + part.substr(i + 3));
      }
      break;
    }
    case ParamType::kBool:
      out.push_back(part == "true" ? "TRUE" : "False");
      out.push_back(part == "true" ? "1" : "0");
      out.push_back("%74rue");
      out.push_back(part + " ");
      break;
    case ParamType::kDate: {
      int year = std::stoi(part.substr(0, 4));
      std::string y = part.substr(0, 4), m = part.substr(5, 2), d = part.substr(8, 2);
      if (m[0] == '0') out.push_back(y + "-" + m.substr(1) + "-" + d);
      if (d[0] == '0') out.push_back(y + "-" + m + "-" + d.substr(1));
      bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
      if (!leap) out.push_back(y + "-02-29");
      out.push_back(y + "-" + m + "-32");
      out.push_back(y + "-13-" + d);
      out.push_back("+" + part);
      out.push_back(part + "T00:00:00");
      out.push_back(y + m + d);
      out.push_back("2023-02-29");
      break;
    }
  }
  return out;
}

TEST(KeyProperties, MutationsAreRejectedNamingTheParameter) {
  RandomValues random(42);
  const ParamType kTypes[] = {ParamType::kInt, ParamType::kStr, ParamType::kBool, ParamType::kDate};
  int checked = 0;
  for (int i = 0; i < kRounds; ++i) {
    // A key of 1..3 random parameters; one of them is spelled wrong.
    std::vector<ParamSpec> specs;
    std::vector<std::string> parts;
    for (int n = 1 + random.Below(3); n > 0; --n) {
      specs.push_back({"param_" + std::to_string(specs.size()), kTypes[random.Below(4)]});
      std::string value = random.Of(specs.back().type);
      parts.push_back(specs.back().type == ParamType::kStr ? EscapeKeyPart(value) : value);
    }
    size_t victim = static_cast<size_t>(random.Below(static_cast<int>(specs.size())));
    for (const std::string& mutated : Mutations(specs[victim].type, parts[victim], random)) {
      std::string key = "mut";
      for (size_t k = 0; k < parts.size(); ++k) key += "/" + (k == victim ? mutated : parts[k]);
      StatusOr<std::vector<std::string>> decoded = DecodeKey(key, "mut", specs);
      ASSERT_FALSE(decoded.ok()) << QuoteForError(key);
      ASSERT_TRUE(Contains(decoded.status().message(),
                           "primer \"mut\": parameter \"" + specs[victim].name + "\""));
      ++checked;
    }
    // A raw '/' inside a value, or an extra one anywhere, changes the number of parts.
    std::string key = "mut";
    for (const std::string& part : parts) key += "/" + part;
    size_t slash = key.find('/') + static_cast<size_t>(random.Below(static_cast<int>(key.size() - 3) + 1));
    for (const std::string& bad : {key + "/", key.substr(0, slash) + "/" + key.substr(slash)}) {
      StatusOr<std::vector<std::string>> decoded = DecodeKey(bad, "mut", specs);
      ASSERT_FALSE(decoded.ok()) << QuoteForError(bad);
      ASSERT_TRUE(Contains(decoded.status().message(), "primer \"mut\": key "));
      ASSERT_TRUE(Contains(decoded.status().message(),
                           "parameters, expected " + std::to_string(specs.size())));
      ++checked;
    }
  }
  EXPECT_GT(checked, 5 * kRounds);
}

}  // namespace
}  // namespace kck
