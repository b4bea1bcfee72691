// SqliteStatement: a prepared statement that is reused, for every SQLite connection of Wallex
// (the store's, the read side's). ResetOnExit resets one when a scope ends, however it ends.
//
// Contract of every use: bind every parameter the SQL refers to, step, reset. Bindings are not
// cleared on reset (it costs a loop over the parameters on every use), which is why each use must
// bind them all. Text is bound without a copy (SQLITE_STATIC): it must outlive the step, which a
// use that binds, steps and resets within one call guarantees.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wallex {

class SqliteStatement {
 public:
  SqliteStatement() = default;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement() { sqlite3_finalize(stmt_); }

  // Prepares (again, if it was) for long reuse; the SQLite result code.
  int prepare(sqlite3* db, const char* sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  int prepare(sqlite3* db, const std::string& sql) { return prepare(db, sql.c_str()); }
  bool prepared() const { return stmt_ != nullptr; }

  void bind(int index, std::int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void bind(int index, std::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  }
  void bind_optional(int index, const std::optional<std::string>& value) {
    if (value) {
      bind(index, std::string_view(*value));
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }
  void bind_null(int index) { sqlite3_bind_null(stmt_, index); }
  int step() { return sqlite3_step(stmt_); }
  void reset() { sqlite3_reset(stmt_); }

  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string_view text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (data == nullptr) return {};
    return {data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
  }
  std::optional<std::string> optional_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return std::string(text(column));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// "(?,?,?),(?,?,?)": `rows` groups of `columns` parameters, the VALUES of a statement that inserts
// several rows at once (one step for all of them: SQLite's cost per statement — the step, its
// halt, the reset — is then paid once per group instead of once per row).
inline std::string values_groups(std::size_t columns, std::size_t rows) {
  std::string group = "(";
  for (std::size_t c = 0; c < columns; ++c) group += c == 0 ? "?" : ",?";
  group += ')';
  std::string sql;
  sql.reserve(rows * (group.size() + 1));
  for (std::size_t r = 0; r < rows; ++r) {
    if (r > 0) sql += ',';
    sql += group;
  }
  return sql;
}

class ResetOnExit {
 public:
  explicit ResetOnExit(SqliteStatement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  SqliteStatement& statement_;
};

}  // namespace wallex
