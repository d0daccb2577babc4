// Blocking PostgreSQL access for commands, installers and tests.
//
// The daemon's event loop never uses this file: it has its own non-blocking
// connection in pg/async_connection.h. Both share Result and the parameter
// type so that SQL helpers can serve either.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kck::pg {

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// A bound query parameter in text form; nullopt is SQL NULL.
using Param = std::optional<std::string>;
using Params = std::vector<Param>;

// Owns one PGresult. Row and column indexes are zero-based.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* r) : res_(r) {}

  int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
  int cols() const { return res_ ? PQnfields(res_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  // The text of a field; empty for NULL.
  std::string_view get(int row, int col) const {
    return std::string_view(PQgetvalue(res_.get(), row, col),
                            static_cast<size_t>(PQgetlength(res_.get(), row, col)));
  }
  std::optional<std::string> get_opt(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return std::string(get(row, col));
  }
  PGresult* raw() const { return res_.get(); }

 private:
  ResultPtr res_;
};

// One-line error text of a failed result: primary message, then detail
// when PostgreSQL gives one. The position is the Status's (AtPosition).
std::string ResultError(const PGresult* res);
// The character of the statement at which PostgreSQL placed the error,
// counted from 1; 0 for none.
int ErrorPosition(const PGresult* res);

// The Status of a failed result: Unavailable (transient: retry the unit of
// work, it is not the statement's fault) for SQLSTATE classes 08
// (connection), 40 (deadlock, serialization), 53 (resources), 57 (operator
// intervention, statement_timeout) and 55P03 (lock_not_available); Runtime
// otherwise. The SQLSTATE and the position travel with it.
Status ResultStatus(const PGresult* res);
// Whether a SQLSTATE names a transient failure (see ResultStatus).
bool TransientSqlstate(std::string_view sqlstate);
inline constexpr std::string_view kQueryCanceled = "57014";  // statement_timeout

// A bounded excerpt of user data for a log line or an error message: at
// most `max` bytes, cut at a UTF-8 boundary, with the full size appended
// when cut.
std::string Excerpt(std::string_view text, size_t max = 200);

// Invalid when `conninfo` (a key=value string or a URI) does not parse, as
// libpq reads it; says nothing of whether a server can be reached there.
Status CheckConninfo(const std::string& conninfo);

// One-line error text of a connection (its last error message, trimmed).
std::string ConnectionError(const PGconn* conn);

// Turns a libpq error message that may span lines into one line.
std::string OneLine(std::string_view text);

class Connection {
 public:
  // Connects with a libpq URI or key=value string. Sets
  // application_name=kck unless the string names one.
  static StatusOr<Connection> Open(const std::string& conninfo);

  Connection() = default;
  Connection(Connection&&) = default;
  Connection& operator=(Connection&&) = default;

  // Runs one statement with bound text parameters. Fails with the server's
  // message for any status other than COMMAND_OK or TUPLES_OK.
  StatusOr<Result> Exec(std::string_view sql, const Params& params = {});
  // Runs a script of several statements with the simple query protocol
  // (no parameters). Used for migrations and generated DDL.
  Status ExecScript(std::string_view sql);
  // Checks that `sql` (with $n parameters of the given types) prepares,
  // without running it.
  Status Prepare(std::string_view sql, const std::vector<Oid>& types = {});
  // How many columns `sql` returns, told by preparing it, without running it.
  StatusOr<int> ResultColumns(std::string_view sql);

  // Quotes an identifier or a literal with libpq's escaping.
  std::string QuoteIdent(std::string_view ident) const;
  std::string QuoteLiteral(std::string_view text) const;

  PGconn* raw() const { return conn_.get(); }

 private:
  explicit Connection(ConnPtr conn) : conn_(std::move(conn)) {}
  ConnPtr conn_;
};

// Returns conninfo with application_name set when it does not name one.
std::string WithApplicationName(const std::string& conninfo, const std::string& name);

}  // namespace kck::pg

namespace kck::pg {

// A PostgreSQL array literal ('{"a","b",NULL}') of text elements, for
// binding a list as one parameter ($1::text[], $1::jsonb[], ...).
std::string ArrayLiteral(const std::vector<std::optional<std::string>>& items);
std::string ArrayLiteral(const std::vector<std::string>& items);

}  // namespace kck::pg
