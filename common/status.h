// Status and StatusOr: how errors travel between kck modules.
//
// A Status is either ok or carries a kind and a one-line message written in
// PostgreSQL's error style (lower case, no trailing period, names the object).
// Exceptions never cross a module border; StatusOr<T> carries a value or an
// error.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kck {

class Status {
 public:
  enum class Kind { kOk, kInvalid, kRuntime, kUnavailable };

  Status() = default;
  static Status Ok() { return Status(); }
  // Bad input from a user: key, config, arguments. Maps to exit code 2.
  static Status Invalid(std::string msg) { return Status(Kind::kInvalid, std::move(msg)); }
  // Something failed at run time: database, I/O, compute. Maps to exit code 1.
  static Status Runtime(std::string msg) { return Status(Kind::kRuntime, std::move(msg)); }
  // A service needed for the work is down (not the work's fault): retry the
  // whole unit later rather than record a failure. Exit code 1.
  static Status Unavailable(std::string msg) { return Status(Kind::kUnavailable, std::move(msg)); }

  bool ok() const { return kind_ == Kind::kOk; }
  Kind kind() const { return kind_; }
  bool transient() const { return kind_ == Kind::kUnavailable; }
  const std::string& message() const { return message_; }
  // The SQLSTATE of a server error ("57014"), empty otherwise.
  const std::string& sqlstate() const { return sqlstate_; }
  Status WithSqlstate(std::string code) const {
    Status s = *this;
    s.sqlstate_ = std::move(code);
    return s;
  }
  // Where PostgreSQL placed a server error in the statement sent: a
  // character, counted from 1; 0 for none. The message then ends in
  // " at character N".
  int position() const { return position_; }
  // Returns a copy placed at `position` instead (0: nowhere), its message
  // ending so.
  Status AtPosition(int position) const {
    Status s = *this;
    const std::string old = PositionText(position_);
    if (message_.size() >= old.size() && message_.compare(message_.size() - old.size(), old.size(), old) == 0) {
      s.message_.resize(message_.size() - old.size());
    }
    s.message_ += PositionText(position);
    s.position_ = position;
    return s;
  }
  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    Status s = *this;
    s.message_ = context + ": " + message_;
    return s;
  }

 private:
  Status(Kind kind, std::string msg) : kind_(kind), message_(std::move(msg)) {}
  static std::string PositionText(int position) {
    return position > 0 ? " at character " + std::to_string(position) : "";
  }
  Kind kind_ = Kind::kOk;
  std::string message_;
  std::string sqlstate_;
  int position_ = 0;
};

template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kck

// Returns early from the enclosing function when `expr` is not ok.
#define KCK_RETURN_IF_ERROR(expr)        \
  do {                                   \
    ::kck::Status kck_status_ = (expr);  \
    if (!kck_status_.ok()) return kck_status_; \
  } while (0)
