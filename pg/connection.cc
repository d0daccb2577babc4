#include "pg/connection.h"

#include <cstdlib>
#include <cstring>

namespace kck::pg {

std::string OneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

bool TransientSqlstate(std::string_view code) {
  if (code.size() != 5) return false;
  std::string_view cls = code.substr(0, 2);
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || code == "55P03";
}

Status ResultStatus(const PGresult* res) {
  const char* code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = code ? code : "";
  std::string msg = ResultError(res);
  Status s = TransientSqlstate(sqlstate) ? Status::Unavailable(msg) : Status::Runtime(msg);
  return s.WithSqlstate(sqlstate).AtPosition(ErrorPosition(res));
}

int ErrorPosition(const PGresult* res) {
  const char* pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : nullptr;
  return pos ? std::atoi(pos) : 0;
}

std::string Excerpt(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "... (" + std::to_string(text.size()) + " bytes)";
}

std::string ResultError(const PGresult* res) {
  if (res == nullptr) return "no result from server";
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (primary == nullptr) return OneLine(PQresultErrorMessage(res));
  std::string msg = primary;
  if (const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) {
    msg += " (";
    msg += detail;
    msg += ")";
  }
  return OneLine(msg);
}

std::string ConnectionError(const PGconn* conn) {
  if (conn == nullptr) return "out of memory";
  return OneLine(PQerrorMessage(conn));
}

std::string WithApplicationName(const std::string& conninfo, const std::string& name) {
  if (conninfo.find("application_name") != std::string::npos) return conninfo;
  bool uri = conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
  if (uri) return conninfo + (conninfo.find('?') == std::string::npos ? "?" : "&") + "application_name=" + name;
  return conninfo + (conninfo.empty() ? "" : " ") + "application_name=" + name;
}

Status CheckConninfo(const std::string& conninfo) {
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(PQconninfoParse(conninfo.c_str(), &error),
                                                                        &PQconninfoFree);
  std::unique_ptr<char, decltype(&PQfreemem)> why(error, &PQfreemem);
  if (options) return Status::Ok();
  return Status::Invalid("invalid connection string: " + (why ? OneLine(why.get()) : std::string("out of memory")));
}

StatusOr<Connection> Connection::Open(const std::string& conninfo) {
  KCK_RETURN_IF_ERROR(CheckConninfo(conninfo));
  ConnPtr conn(PQconnectdb(WithApplicationName(conninfo, "kck").c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Runtime("could not connect to database: " + ConnectionError(conn.get()));
  }
  // Notices (e.g. "relation already exists, skipping") are not errors.
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  return Connection(std::move(conn));
}

StatusOr<Result> Connection::Exec(std::string_view sql, const Params& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  std::string text(sql);
  Result res(PQexecParams(conn_.get(), text.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
  ExecStatusType st = res.raw() ? PQresultStatus(res.raw()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (!res.raw()) return Status::Runtime(ConnectionError(conn_.get()));
    return Status::Runtime(ResultError(res.raw())).AtPosition(ErrorPosition(res.raw()));
  }
  return res;
}

Status Connection::ExecScript(std::string_view sql) {
  std::string text(sql);
  Result res(PQexec(conn_.get(), text.c_str()));
  ExecStatusType st = res.raw() ? PQresultStatus(res.raw()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
    return res.raw() ? ResultStatus(res.raw()) : Status::Runtime(ConnectionError(conn_.get()));
  }
  return Status::Ok();
}

Status Connection::Prepare(std::string_view sql, const std::vector<Oid>& types) {
  std::string text(sql);
  // The unnamed statement is replaced by the next one; nothing to clean up.
  Result res(PQprepare(conn_.get(), "", text.c_str(), static_cast<int>(types.size()),
                       types.empty() ? nullptr : types.data()));
  if (!res.raw()) return Status::Invalid(ConnectionError(conn_.get()));
  if (PQresultStatus(res.raw()) != PGRES_COMMAND_OK) {
    return Status::Invalid(ResultError(res.raw())).AtPosition(ErrorPosition(res.raw()));
  }
  return Status::Ok();
}

StatusOr<int> Connection::ResultColumns(std::string_view sql) {
  Status prepared = Prepare(sql);
  if (!prepared.ok()) return prepared;
  Result res(PQdescribePrepared(conn_.get(), ""));
  if (!res.raw() || PQresultStatus(res.raw()) != PGRES_COMMAND_OK) {
    return Status::Invalid(res.raw() ? ResultError(res.raw()) : ConnectionError(conn_.get()));
  }
  return PQnfields(res.raw());
}

std::string Connection::QuoteIdent(std::string_view ident) const {
  char* q = PQescapeIdentifier(conn_.get(), ident.data(), ident.size());
  std::string out = q ? q : "";
  PQfreemem(q);
  return out;
}

std::string Connection::QuoteLiteral(std::string_view text) const {
  char* q = PQescapeLiteral(conn_.get(), text.data(), text.size());
  std::string out = q ? q : "";
  PQfreemem(q);
  return out;
}

}  // namespace kck::pg

namespace kck::pg {

std::string ArrayLiteral(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  size_t size = 2;
  for (const auto& item : items) size += item ? item->size() + 3 : 5;
  out.reserve(size + size / 8);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    // Runs between characters to escape are appended whole: values can be megabytes.
    const std::string& item = *items[i];
    size_t from = 0;
    for (size_t at; (at = item.find_first_of("\"\\", from)) != std::string::npos; from = at + 1) {
      out.append(item, from, at - from);
      out += '\\';
      out += item[at];
    }
    out.append(item, from, std::string::npos);
    out += '"';
  }
  out += '}';
  return out;
}

std::string ArrayLiteral(const std::vector<std::string>& items) {
  std::vector<std::optional<std::string>> opt(items.begin(), items.end());
  return ArrayLiteral(opt);
}

}  // namespace kck::pg
