#include "primers/sql_params.h"

#include <algorithm>
#include <cctype>
#include <functional>

namespace kck {
namespace {

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Returns the index just past a quoted section that starts at `i` with
// `quote`, where a doubled quote stands for itself.
size_t SkipQuoted(std::string_view s, size_t i, char quote) {
  ++i;
  while (i < s.size()) {
    if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    ++i;
  }
  return s.size();
}

// E'...' strings allow backslash escapes.
size_t SkipEscapeString(std::string_view s, size_t i) {
  ++i;
  while (i < s.size()) {
    if (s[i] == '\\') {
      i += 2;
      continue;
    }
    if (s[i] == '\'') {
      if (i + 1 < s.size() && s[i + 1] == '\'') {
        i += 2;
        continue;
      }
      return i + 1;
    }
    ++i;
  }
  return s.size();
}

}  // namespace

StatusOr<std::string> RewriteNamedParams(std::string_view s,
                                         const std::function<StatusOr<std::string>(const std::string&)>& replace,
                                         std::vector<SqlEdit>* edits) {
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    size_t next = i + 1;
    if (c == '\'') {
      bool escape = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                    (i < 2 || !IsIdentChar(s[i - 2]));
      next = escape ? SkipEscapeString(s, i) : SkipQuoted(s, i, '\'');
    } else if (c == '"') {
      next = SkipQuoted(s, i, '"');
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      next = s.find('\n', i);
      if (next == std::string_view::npos) next = s.size();
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      int depth = 0;
      next = i;
      while (next < s.size()) {
        if (s.compare(next, 2, "/*") == 0) {
          ++depth;
          next += 2;
        } else if (s.compare(next, 2, "*/") == 0) {
          next += 2;
          if (--depth == 0) break;
        } else {
          ++next;
        }
      }
    } else if (c == '$' && (i == 0 || !IsIdentChar(s[i - 1])) && i + 1 < s.size() &&
               !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      // Dollar quote $tag$...$tag$ (a $n parameter is left alone).
      size_t j = i + 1;
      while (j < s.size() && IsIdentChar(s[j])) ++j;
      if (j < s.size() && s[j] == '$') {
        std::string_view tag = s.substr(i, j - i + 1);
        size_t end = s.find(tag, j + 1);
        next = end == std::string_view::npos ? s.size() : end + tag.size();
      }
    } else if (c == ':') {
      if (i + 1 < s.size() && s[i + 1] == ':') {
        next = i + 2;  // a cast
      } else if (i + 1 < s.size() && IsIdentStart(s[i + 1]) && (i == 0 || s[i - 1] != ':')) {
        size_t j = i + 1;
        while (j < s.size() && IsIdentChar(s[j])) ++j;
        auto replacement = replace(std::string(s.substr(i + 1, j - i - 1)));
        if (!replacement.ok()) return replacement.status();
        if (edits) edits->push_back({out.size(), replacement->size(), i, j - i});
        out += *replacement;
        i = j;
        continue;
      }
    }
    out.append(s.substr(i, next - i));
    i = next;
  }
  return out;
}

StatusOr<BoundSql> BindNamedParams(std::string_view s, const std::vector<NamedParam>& declared) {
  BoundSql out;
  auto sql = RewriteNamedParams(s, [&](const std::string& name) -> StatusOr<std::string> {
    auto d = std::find_if(declared.begin(), declared.end(), [&](const NamedParam& p) { return p.name == name; });
    if (d == declared.end()) {
      std::string known;
      for (const auto& p : declared) known += (known.empty() ? ":" : ", :") + p.name;
      return Status::Invalid("unknown parameter :" + name + " (known: " + (known.empty() ? "none" : known) + ")");
    }
    auto pos = std::find(out.order.begin(), out.order.end(), name);
    size_t n = static_cast<size_t>(pos - out.order.begin()) + 1;
    if (pos == out.order.end()) out.order.push_back(name);
    return "($" + std::to_string(n) + "::" + d->sql_type + ")";
  }, &out.origin.edits);
  if (!sql.ok()) return sql.status();
  out.sql = std::move(*sql);
  out.origin.text = std::string(s);
  out.origin.end = out.sql.size();
  return out;
}

BoundSql Verbatim(std::string_view sql) {
  BoundSql out;
  out.sql = std::string(sql);
  out.origin.text = out.sql;
  out.origin.end = out.sql.size();
  return out;
}

BoundSql Embedded(std::string_view before, BoundSql sql, std::string_view after) {
  sql.sql = std::string(before) + sql.sql + std::string(after);
  sql.origin = sql.origin.Shifted(before.size());
  return sql;
}

Status InUserSql(const Status& error, const BoundSql& sql) { return InUserSql(error, sql.sql, {sql.origin}); }

}  // namespace kck
