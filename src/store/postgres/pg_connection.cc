#include "store/postgres/pg_connection.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>

namespace wallex {
namespace {

// Connection failures, and a server that is going away (admin_shutdown, crash_shutdown,
// cannot_connect_now): any statement in flight may or may not have committed.
bool means_connection_lost(std::string_view sqlstate) {
  return sqlstate.substr(0, 2) == "08" || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// postgresql://user:secret@host/db -> postgresql://user:***@host/db (for logs and messages).
std::string hide_password(const std::string& url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const std::size_t at = url.find('@', scheme + 3);
  if (at == std::string::npos) return url;
  const std::size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace

StoreErrorKind classify_sqlstate(std::string_view sqlstate, bool connection_lost) {
  if (connection_lost || means_connection_lost(sqlstate)) return StoreErrorKind::kIo;
  if (sqlstate == "23505" || sqlstate == "40001" || sqlstate == "40P01") {
    return StoreErrorKind::kConflict;
  }
  if (sqlstate == "53100") return StoreErrorKind::kFull;
  return StoreErrorKind::kOther;
}

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() { PQclear(result_); }

int PgResult::rows() const { return result_ == nullptr ? 0 : PQntuples(result_); }
int PgResult::columns() const { return result_ == nullptr ? 0 : PQnfields(result_); }

bool PgResult::is_null(int row, int column) const {
  WALLEX_CHECK(row < rows() && column < columns());
  return PQgetisnull(result_, row, column) != 0;
}

std::string_view PgResult::text(int row, int column) const {
  WALLEX_CHECK(row < rows() && column < columns());
  return std::string_view(PQgetvalue(result_, row, column),
                          static_cast<std::size_t>(PQgetlength(result_, row, column)));
}

std::int64_t PgResult::int64(int row, int column) const {
  const std::string_view value = text(row, column);
  std::int64_t parsed = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  WALLEX_CHECK(error == std::errc() && end == value.data() + value.size() && !value.empty());
  return parsed;
}

std::int64_t PgResult::affected_rows() const {
  if (result_ == nullptr) return 0;
  const char* count = PQcmdTuples(result_);
  if (count == nullptr || *count == '\0') return 0;
  std::int64_t parsed = 0;
  std::from_chars(count, count + std::strlen(count), parsed);
  return parsed;
}

Result<std::unique_ptr<PgConnection>, StoreError> PgConnection::connect(const std::string& url) {
  // Wallex's defaults come first: values in the URL (expanded from `dbname`) override them.
  const std::string timeout = std::to_string(kConnectTimeoutSeconds);
  // client_min_messages: NOTICEs ("relation ... already exists, skipping") would go to stderr.
  const char* keywords[] = {"connect_timeout", "application_name", "options", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "wallex", "-c client_min_messages=warning",
                          url.c_str(), nullptr};
  pg_conn* connection = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  const std::string shown = hide_password(url);
  if (connection == nullptr) {
    return fail(StoreError{StoreErrorKind::kIo, "cannot connect to " + shown + ": out of memory"});
  }
  if (PQstatus(connection) != CONNECTION_OK) {
    StoreError error{StoreErrorKind::kIo,
                     "cannot connect to PostgreSQL at " + shown + ": " +
                         trim(PQerrorMessage(connection))};
    PQfinish(connection);
    return fail(std::move(error));
  }
  return std::unique_ptr<PgConnection>(new PgConnection(connection, shown));
}

PgConnection::~PgConnection() { PQfinish(connection_); }

bool PgConnection::alive() const { return PQstatus(connection_) == CONNECTION_OK; }

Result<PgResult, StoreError> PgConnection::finish(pg_result* raw, std::string_view what) {
  PgResult result(raw);
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
    return result;
  }
  const bool lost = PQstatus(connection_) != CONNECTION_OK;
  const char* state = raw == nullptr ? nullptr : PQresultErrorField(raw, PG_DIAG_SQLSTATE);
  const std::string sqlstate = state == nullptr ? "" : state;
  std::string message = raw != nullptr ? trim(PQresultErrorMessage(raw)) : "";
  if (message.empty()) message = trim(PQerrorMessage(connection_));
  if (lost) message += " (connection to " + display_url_ + " lost; the outcome is unknown)";
  if (!sqlstate.empty()) message += " [SQLSTATE " + sqlstate + "]";
  return fail(StoreError{classify_sqlstate(sqlstate, lost), std::string(what) + ": " + message});
}

Result<PgResult, StoreError> PgConnection::exec(const std::string& sql) {
  return finish(PQexec(connection_, sql.c_str()), "PostgreSQL");
}

namespace {

// libpq wants NUL-terminated text parameters: copies the views.
struct ParamArrays {
  std::vector<std::string> storage;
  std::vector<const char*> values;
  explicit ParamArrays(const PgParams& params) {
    storage.reserve(params.size());
    values.reserve(params.size());
    for (const auto& param : params) {
      if (param) {
        storage.emplace_back(*param);
        values.push_back(storage.back().c_str());
      } else {
        values.push_back(nullptr);
      }
    }
  }
};

}  // namespace

Result<PgResult, StoreError> PgConnection::exec(const std::string& sql, const PgParams& params) {
  const ParamArrays arrays(params);
  return finish(PQexecParams(connection_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                             arrays.values.data(), nullptr, nullptr, /*resultFormat=*/0),
                "PostgreSQL");
}

Status<StoreError> PgConnection::prepare(const std::string& name, const std::string& sql,
                                         int param_count) {
  auto prepared = finish(PQprepare(connection_, name.c_str(), sql.c_str(), param_count, nullptr),
                         "preparing " + name);
  if (!prepared) return fail(prepared.error());
  return Ok{};
}

Result<PgResult, StoreError> PgConnection::exec_prepared(const std::string& name,
                                                         const PgParams& params) {
  const ParamArrays arrays(params);
  return finish(PQexecPrepared(connection_, name.c_str(), static_cast<int>(params.size()),
                               arrays.values.data(), nullptr, nullptr, /*resultFormat=*/0),
                name);
}

void ArrayLiteral::add(std::optional<std::string_view> value) {
  if (size_++ > 0) text_ += ',';
  if (!value) {
    text_ += "NULL";
    return;
  }
  text_ += '"';
  for (const char c : *value) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayLiteral::add(std::int64_t value) {
  if (size_++ > 0) text_ += ',';
  text_ += std::to_string(value);
}

std::string ArrayLiteral::take() {
  text_ += '}';
  return std::move(text_);
}

}  // namespace wallex
