// PgConnection: a small RAII wrapper of one libpq connection, and the one mapping from a
// PostgreSQL failure to a StoreError. The only place, with pg_connection.cc, that includes
// libpq-fe.h: this header forward-declares libpq's types so it stays cheap to include.
//
// Errors (StoreErrorKind):
//   kConflict  23505 unique_violation, 40001 serialization_failure, 40P01 deadlock_detected:
//              the transaction was rolled back; deciding again against fresh state may succeed
//   kFull      53100 disk_full: the transaction was rolled back, nothing was written
//   kIo        the connection is lost (class 08, or the socket closed under a statement, or the
//              server shuts down: 57P01..57P03): the outcome of a commit in flight is unknown
//   kOther     anything else, with the server's message and SQLSTATE
//
// Thread safety: none; one connection has one owner at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/store.h"

struct pg_conn;
struct pg_result;

namespace wallex {

// The kind of failure a SQLSTATE means (see the table above); `connection_lost` forces kIo.
StoreErrorKind classify_sqlstate(std::string_view sqlstate, bool connection_lost);

// The result of one statement; frees itself.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* result) : result_(result) {}
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  ~PgResult();

  int rows() const;
  int columns() const;
  bool is_null(int row, int column) const;
  // The value as text (empty for NULL); valid while this result lives.
  std::string_view text(int row, int column) const;
  // A bigint/integer column; a value that is not an integer is a broken invariant (the
  // server sent something its column type cannot hold).
  std::int64_t int64(int row, int column) const;
  // Rows changed by INSERT/UPDATE/DELETE (PQcmdTuples), 0 for other statements.
  std::int64_t affected_rows() const;

 private:
  pg_result* result_ = nullptr;
};

// Text parameters of a statement ($1, $2, ...): nullopt is SQL NULL. The views need not be
// NUL-terminated (they are copied).
using PgParams = std::vector<std::optional<std::string_view>>;

class PgConnection {
 public:
  // Connects to a libpq URL or keyword/value string, e.g.
  // postgresql://user@host:5432/db?sslmode=disable. Waits at most kConnectTimeoutSeconds unless
  // the URL sets connect_timeout itself. kIo when the server cannot be reached.
  static constexpr int kConnectTimeoutSeconds = 10;
  static Result<std::unique_ptr<PgConnection>, StoreError> connect(const std::string& url);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // One or more statements without parameters (simple query protocol). With several
  // statements, the last one's result is returned.
  Result<PgResult, StoreError> exec(const std::string& sql);
  // One statement with text parameters (extended protocol, unnamed statement).
  Result<PgResult, StoreError> exec(const std::string& sql, const PgParams& params);
  // Prepares a named statement once per connection; exec_prepared then skips parsing and
  // planning (the plan is cached by the server after a few runs).
  Status<StoreError> prepare(const std::string& name, const std::string& sql, int param_count);
  Result<PgResult, StoreError> exec_prepared(const std::string& name, const PgParams& params);

  // False once the connection is lost; a lost connection is never reconnected here.
  bool alive() const;
  // The URL without its password, for messages.
  const std::string& display_url() const { return display_url_; }

 private:
  PgConnection(pg_conn* connection, std::string display_url)
      : connection_(connection), display_url_(std::move(display_url)) {}
  Result<PgResult, StoreError> finish(pg_result* result, std::string_view what);

  pg_conn* connection_ = nullptr;
  std::string display_url_;
};

// Builds a PostgreSQL array literal ({...}) element by element, to pass a whole column as one
// text[] or bigint[] parameter: strings are double-quoted with \ and " escaped, nullopt is NULL.
class ArrayLiteral {
 public:
  ArrayLiteral() : text_("{") {}
  void add(std::optional<std::string_view> value);
  void add(std::int64_t value);
  // The finished literal ("{...}"); the builder must not be used afterwards.
  std::string take();
  std::size_t size() const { return size_; }

 private:
  std::string text_;
  std::size_t size_ = 0;
};

}  // namespace wallex
