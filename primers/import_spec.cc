#include "primers/import_spec.h"

#include <cctype>

#include "primers/period.h"

namespace kck {
namespace {

using json = nlohmann::json;

// Calls fn(name, start, length) for each ":name" in `text`.
template <typename Fn>
void ForEachPlaceholder(const std::string& text, Fn fn) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ':' || i + 1 >= text.size()) continue;
    const char c = text[i + 1];
    if (!(std::islower(static_cast<unsigned char>(c)) || c == '_')) continue;
    size_t end = i + 1;
    while (end < text.size() && (std::islower(static_cast<unsigned char>(text[end])) ||
                                 std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '_')) {
      ++end;
    }
    fn(text.substr(i + 1, end - i - 1), i, end - i);
    i = end - 1;
  }
}

Status CheckPlaceholders(const std::string& text, const std::vector<ParamSpec>& params, const std::string& field) {
  Status out = Status::Ok();
  ForEachPlaceholder(text, [&](const std::string& name, size_t, size_t) {
    bool known = false;
    for (const auto& p : params) known |= p.name == name;
    if (!known && out.ok()) out = Status::Invalid(field + ": \":" + name + "\" is not a parameter");
  });
  return out;
}

Status ParseHttp(const json& j, const std::vector<ParamSpec>& params, ImportSpec* out) {
  auto url = j.find("url");
  if (url == j.end() || !url->is_string()) return Status::Invalid("field \"url\" is required (a string)");
  out->url = url->get<std::string>();
  if (out->url.rfind("http://", 0) != 0 && out->url.rfind("https://", 0) != 0) {
    return Status::Invalid("url: \"" + out->url + "\" is not an http:// or https:// URL");
  }
  KCK_RETURN_IF_ERROR(CheckPlaceholders(out->url, params, "url"));
  if (auto h = j.find("headers"); h != j.end()) {
    if (!h->is_object()) return Status::Invalid("field \"headers\" must be an object of strings");
    for (const auto& [name, value] : h->items()) {
      if (!value.is_string()) return Status::Invalid("headers." + name + ": must be a string");
      out->headers[name] = value.get<std::string>();
    }
  }
  if (j.contains("argv")) return Status::Invalid("an http primer has no \"argv\"");
  return Status::Ok();
}

Status ParseCommand(const json& j, const std::vector<ParamSpec>& params, ImportSpec* out) {
  auto argv = j.find("argv");
  if (argv == j.end() || !argv->is_array() || argv->empty()) {
    return Status::Invalid("field \"argv\" is required (a non-empty array of strings)");
  }
  for (size_t i = 0; i < argv->size(); ++i) {
    if (!(*argv)[i].is_string()) return Status::Invalid("argv[" + std::to_string(i) + "]: must be a string");
    out->argv.push_back((*argv)[i].get<std::string>());
    KCK_RETURN_IF_ERROR(CheckPlaceholders(out->argv.back(), params, "argv[" + std::to_string(i) + "]"));
  }
  if (out->argv[0].empty() || out->argv[0][0] != '/') {
    return Status::Invalid("argv[0]: \"" + out->argv[0] + "\" is not an absolute path (no shell, no PATH search)");
  }
  if (j.contains("url") || j.contains("headers")) return Status::Invalid("a command primer has no \"url\" or \"headers\"");
  return Status::Ok();
}

Status ParseLimits(const json& j, ImportSpec* out) {
  if (auto t = j.find("timeout"); t != j.end()) {
    if (!t->is_string()) return Status::Invalid("field \"timeout\" must be a period string such as \"5s\"");
    auto p = ParsePeriod(t->get<std::string>());
    if (!p.ok()) return p.status().WithContext("timeout");
    out->timeout = *p;
  }
  if (auto r = j.find("retries"); r != j.end()) {
    if (!r->is_number_integer() || r->get<int64_t>() < 0 || r->get<int64_t>() > 10) {
      return Status::Invalid("field \"retries\" must be an integer from 0 to 10");
    }
    out->retries = r->get<int>();
  }
  if (auto m = j.find("max_bytes"); m != j.end()) {
    if (!m->is_number_integer() || m->get<int64_t>() < 1 || m->get<int64_t>() > (int64_t{1} << 30)) {
      return Status::Invalid("field \"max_bytes\" must be an integer from 1 to 1073741824");
    }
    out->max_bytes = m->get<size_t>();
  }
  return Status::Ok();
}

}  // namespace

bool IsImportKind(const std::string& engine) { return engine == "http" || engine == "command"; }

Status ParseImportFields(const json& j, const std::string& engine, const std::vector<ParamSpec>& params,
                         ImportSpec* out) {
  if (!IsImportKind(engine)) {
    for (const char* f : {"url", "argv", "headers", "timeout", "retries", "max_bytes"}) {
      if (j.contains(f)) return Status::Invalid("field \"" + std::string(f) + "\" is for primers of kind http or command");
    }
    return Status::Ok();
  }
  KCK_RETURN_IF_ERROR(engine == "http" ? ParseHttp(j, params, out) : ParseCommand(j, params, out));
  return ParseLimits(j, out);
}

void ImportToJson(const ImportSpec& spec, const std::string& engine, json& j) {
  if (!IsImportKind(engine)) return;
  if (engine == "http") {
    j["url"] = spec.url;
    if (!spec.headers.empty()) j["headers"] = spec.headers;
  } else {
    j["argv"] = spec.argv;
  }
  j["timeout"] = FormatPeriod(spec.timeout);
  j["retries"] = spec.retries;
  j["max_bytes"] = spec.max_bytes;
}

std::string Substitute(const std::string& text, const std::map<std::string, std::optional<std::string>>& values,
                       std::string (*escape)(const std::string&)) {
  std::string out;
  size_t from = 0;
  ForEachPlaceholder(text, [&](const std::string& name, size_t at, size_t length) {
    auto v = values.find(name);
    if (v == values.end()) return;
    out.append(text, from, at - from);
    out += escape(v->second.value_or(""));
    from = at + length;
  });
  out.append(text, from, std::string::npos);
  return out;
}

}  // namespace kck
