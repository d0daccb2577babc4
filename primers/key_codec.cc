#include "primers/key_codec.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

#include "common/quote.h"

namespace kck {
namespace {

Status ValueError(std::string_view primer, const ParamSpec& param, std::string_view got) {
  return Status::Invalid("primer " + QuoteForError(primer) + ": parameter " + QuoteForError(param.name) +
                         " expects " + std::string(ParamTypeName(param.type)) + ", got " +
                         std::string(got));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsCanonicalInt(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty()) return false;
  for (char c : digits) {
    if (!IsDigit(c)) return false;
  }
  // "0" is the only number that starts with '0', and it has no sign.
  if (digits.front() == '0' && (digits.size() > 1 || digits.size() != text.size())) return false;
  return true;
}

bool FitsInt64(std::string_view text) {
  int64_t value;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

bool IsCanonicalDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!IsDigit(text[i])) return false;
  }
  auto number = [&](size_t from, size_t len) {
    int n = 0;
    for (size_t i = from; i < from + len; ++i) n = n * 10 + (text[i] - '0');
    return n;
  };
  int year = number(0, 4), month = number(5, 2), day = number(8, 2);
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int days = kDaysInMonth[month - 1] + (month == 2 && IsLeapYear(year) ? 1 : 0);
  return day <= days;
}

std::string ParameterNames(const std::vector<ParamSpec>& params) {
  if (params.empty()) return "";
  std::string names = " (";
  for (size_t i = 0; i < params.size(); ++i) {
    if (i > 0) names += ", ";
    names += params[i].name;
  }
  return names + ")";
}

std::string CountText(size_t n) { return std::to_string(n) + (n == 1 ? " parameter" : " parameters"); }

// Undoes EscapeKeyPart, accepting only its exact output.
StatusOr<std::string> UnescapeStrPart(std::string_view primer, const ParamSpec& param,
                                      std::string_view key, std::string_view part) {
  std::string value;
  value.reserve(part.size());
  for (size_t i = 0; i < part.size(); ++i) {
    if (part[i] != '%') {
      value += part[i];
      continue;
    }
    std::string_view escape = part.substr(i, 3);
    if (escape == "%25") {
      value += '%';
    } else if (escape == "%2F") {
      value += '/';
    } else {
      return Status::Invalid("primer " + QuoteForError(primer) + ": parameter " + QuoteForError(param.name) +
                             " has invalid escape " + QuoteForError(escape) + " in key " + QuoteForError(key) +
                             " (only %25 and %2F are allowed)");
    }
    i += 2;
  }
  return value;
}

}  // namespace

StatusOr<ParamType> ParseParamType(std::string_view text) {
  for (ParamType type : {ParamType::kInt, ParamType::kStr, ParamType::kBool, ParamType::kDate}) {
    if (text == ParamTypeName(type)) return type;
  }
  return Status::Invalid("parameter type " + QuoteForError(text) +
                         " is not valid (expected int, str, bool or date)");
}

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kInt: return "int";
    case ParamType::kStr: return "str";
    case ParamType::kBool: return "bool";
    case ParamType::kDate: return "date";
  }
  return "unknown";
}

Status ValidatePrimerName(std::string_view name) {
  bool valid = !name.empty() && name.size() <= 63 && !IsDigit(name.front());
  for (char c : name) {
    valid = valid && ((c >= 'a' && c <= 'z') || IsDigit(c) || c == '_');
  }
  if (valid) return Status::Ok();
  return Status::Invalid("primer name " + QuoteForError(name) +
                         " is not valid (expected [a-z_][a-z0-9_]*, at most 63 bytes)");
}

StatusOr<std::string> KeyPrimerName(std::string_view key) {
  std::string_view name = key.substr(0, key.find('/'));
  Status status = ValidatePrimerName(name);
  if (!status.ok()) return status.WithContext("key " + QuoteForError(key));
  return std::string(name);
}

Status CheckCanonical(std::string_view primer, const ParamSpec& param, std::string_view text) {
  switch (param.type) {
    case ParamType::kInt:
      if (!IsCanonicalInt(text)) return ValueError(primer, param, QuoteForError(text));
      if (!FitsInt64(text)) return ValueError(primer, param, QuoteForError(text) + " (out of 64-bit range)");
      return Status::Ok();
    case ParamType::kBool:
      if (text == "true" || text == "false") return Status::Ok();
      return ValueError(primer, param, QuoteForError(text));
    case ParamType::kDate:
      if (IsCanonicalDate(text)) return Status::Ok();
      return ValueError(primer, param, QuoteForError(text) + " (expected YYYY-MM-DD, a real date)");
    case ParamType::kStr:
      for (size_t i = 0; i < text.size();) {
        if (text[i] == '\0') {
          return ValueError(primer, param, "a NUL byte at offset " + std::to_string(i));
        }
        size_t len = Utf8SequenceLength(text, i);
        if (len == 0) return ValueError(primer, param, "invalid UTF-8 at offset " + std::to_string(i));
        i += len;
      }
      return Status::Ok();
  }
  return ValueError(primer, param, QuoteForError(text));
}

namespace {

// The canonical text of an int written with a sign or leading zeros ("05",
// "+5", "-0"); none for text that is no decimal 64-bit int.
std::optional<std::string> CanonicalInt(std::string_view text) {
  const bool negative = !text.empty() && text.front() == '-';
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  if (text.empty() || !std::all_of(text.begin(), text.end(), IsDigit)) return std::nullopt;
  text.remove_prefix(std::min(text.find_first_not_of('0'), text.size() - 1));
  std::string canonical = (negative && text != "0" ? "-" : "") + std::string(text);
  if (!FitsInt64(canonical)) return std::nullopt;
  return canonical;
}

// `parts` joined into a key after `primer`, each int part canonical.
std::string CanonicalIntsKey(std::string_view primer, const std::vector<ParamSpec>& params,
                             const std::vector<std::string_view>& parts) {
  std::string key(primer);
  for (size_t i = 0; i < parts.size(); ++i) {
    auto canonical = params[i].type == ParamType::kInt ? CanonicalInt(parts[i]) : std::nullopt;
    key += "/" + canonical.value_or(std::string(parts[i]));
  }
  return key;
}

// Part `i` of a key as a value: unescaped, and canonical or an error. An
// int written otherwise than canonically is named with the canonical key.
StatusOr<std::string> DecodePart(std::string_view key, std::string_view primer, const std::vector<ParamSpec>& params,
                                 const std::vector<std::string_view>& parts, size_t i) {
  const ParamSpec& param = params[i];
  std::string value(parts[i]);
  if (param.type == ParamType::kStr) {
    StatusOr<std::string> unescaped = UnescapeStrPart(primer, param, key, parts[i]);
    if (!unescaped.ok()) return unescaped.status();
    value = std::move(*unescaped);
  }
  auto canonical = param.type == ParamType::kInt && !IsCanonicalInt(value) ? CanonicalInt(value) : std::nullopt;
  if (canonical) {
    return Status::Invalid("primer " + QuoteForError(primer) + ": parameter " + QuoteForError(param.name) +
                           " is written " + QuoteForError(*canonical) + " in its canonical form, not " +
                           QuoteForError(value) + " (key " + QuoteForError(CanonicalIntsKey(primer, params, parts)) +
                           ")");
  }
  // Types other than str have no escapes: a '%' there fails CheckCanonical.
  KCK_RETURN_IF_ERROR(CheckCanonical(primer, param, value));
  return value;
}

Status CheckKeyLength(const std::string& context, std::string_view key) {
  if (key.size() <= kMaxKeyBytes) return Status::Ok();
  return Status::Invalid(context + ": key " + QuoteForError(key) + " is " + std::to_string(key.size()) +
                         " bytes long; keys are at most " + std::to_string(kMaxKeyBytes) + " bytes");
}

}  // namespace

StatusOr<std::vector<std::string>> DecodeKey(std::string_view key, std::string_view primer,
                                             const std::vector<ParamSpec>& params) {
  KCK_RETURN_IF_ERROR(ValidatePrimerName(primer));
  std::string context = "primer " + QuoteForError(primer);
  KCK_RETURN_IF_ERROR(CheckKeyLength(context, key));
  StatusOr<std::string> name = KeyPrimerName(key);
  if (!name.ok()) return name.status().WithContext(context);
  if (*name != primer) {
    return Status::Invalid(context + ": key " + QuoteForError(key) + " belongs to primer " + QuoteForError(*name));
  }

  std::vector<std::string_view> parts;
  for (size_t slash = key.find('/'); slash != std::string_view::npos;) {
    size_t next = key.find('/', slash + 1);
    parts.push_back(key.substr(slash + 1, next == std::string_view::npos ? next : next - slash - 1));
    slash = next;
  }
  if (parts.size() != params.size()) {
    return Status::Invalid(context + ": key " + QuoteForError(key) + " has " + CountText(parts.size()) +
                           ", expected " + std::to_string(params.size()) + ParameterNames(params));
  }

  std::vector<std::string> values;
  values.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    auto value = DecodePart(key, primer, params, parts, i);
    if (!value.ok()) return value.status();
    values.push_back(std::move(*value));
  }
  return values;
}

StatusOr<std::string> EncodeKey(std::string_view primer, const std::vector<ParamSpec>& params,
                                const std::vector<std::string>& values) {
  KCK_RETURN_IF_ERROR(ValidatePrimerName(primer));
  if (values.size() != params.size()) {
    return Status::Invalid("primer " + QuoteForError(primer) + ": got " + std::to_string(values.size()) +
                           (values.size() == 1 ? " value" : " values") + ", expected " +
                           std::to_string(params.size()) + ParameterNames(params));
  }
  std::string key(primer);
  for (size_t i = 0; i < params.size(); ++i) {
    KCK_RETURN_IF_ERROR(CheckCanonical(primer, params[i], values[i]));
    key += '/';
    key += params[i].type == ParamType::kStr ? EscapeKeyPart(values[i]) : values[i];
  }
  KCK_RETURN_IF_ERROR(CheckKeyLength("primer " + QuoteForError(primer), key));
  return key;
}

std::string EscapeKeyPart(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace kck
