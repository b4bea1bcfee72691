#include "store/sqlite/sqlite_relay_checkpoint.h"

#include <sqlite3.h>

#include <filesystem>

namespace wallex {
namespace {

constexpr std::string_view kRelayName = "wallet-events";

StoreError error_of(sqlite3* db, int code, const std::string& what) {
  StoreErrorKind kind = StoreErrorKind::kOther;
  switch (code & 0xff) {
    case SQLITE_IOERR:
      kind = StoreErrorKind::kIo;
      break;
    case SQLITE_FULL:
      kind = StoreErrorKind::kFull;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      kind = StoreErrorKind::kCorrupt;
      break;
    default:
      break;
  }
  return StoreError{kind, what + ": " + sqlite3_errstr(code) + " (" +
                              (db != nullptr ? sqlite3_errmsg(db) : "") + ")"};
}

}  // namespace

struct SqliteRelayCheckpoint::Impl {
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* upsert = nullptr;
  ~Impl() {
    sqlite3_finalize(select);
    sqlite3_finalize(upsert);
    sqlite3_close_v2(db);
  }
};

SqliteRelayCheckpoint::SqliteRelayCheckpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteRelayCheckpoint::~SqliteRelayCheckpoint() = default;

std::string SqliteRelayCheckpoint::path_in(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "relay.db").string();
}

Result<std::unique_ptr<SqliteRelayCheckpoint>, StoreError> SqliteRelayCheckpoint::open(
    const std::string& data_dir) {
  auto impl = std::make_unique<Impl>();
  const std::string path = path_in(data_dir);
  int rc =
      sqlite3_open_v2(path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return fail(error_of(impl->db, rc, "opening " + path));
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, 5'000);
  rc = sqlite3_exec(impl->db,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                    "CREATE TABLE IF NOT EXISTS relay_checkpoint ("
                    "  relay TEXT PRIMARY KEY,"
                    "  position INTEGER NOT NULL CHECK (position >= 0),"
                    "  updated_at_ms INTEGER NOT NULL) STRICT;",
                    nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(error_of(impl->db, rc, "creating the schema of " + path));
  rc = sqlite3_prepare_v2(impl->db, "SELECT position FROM relay_checkpoint WHERE relay = ?1", -1,
                          &impl->select, nullptr);
  if (rc == SQLITE_OK) {
    // Never backwards: a lower position (an older save replayed) changes nothing.
    rc = sqlite3_prepare_v2(impl->db,
                            "INSERT INTO relay_checkpoint (relay, position, updated_at_ms) "
                            "VALUES (?1, ?2, ?3) ON CONFLICT (relay) DO UPDATE SET "
                            "position = excluded.position, updated_at_ms = excluded.updated_at_ms "
                            "WHERE excluded.position > relay_checkpoint.position",
                            -1, &impl->upsert, nullptr);
  }
  if (rc != SQLITE_OK) return fail(error_of(impl->db, rc, "preparing statements of " + path));
  return std::unique_ptr<SqliteRelayCheckpoint>(new SqliteRelayCheckpoint(std::move(impl)));
}

Result<std::int64_t, StoreError> SqliteRelayCheckpoint::load() {
  sqlite3_stmt* s = impl_->select;
  sqlite3_bind_text(s, 1, kRelayName.data(), static_cast<int>(kRelayName.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(s);
  std::int64_t position = 0;
  if (rc == SQLITE_ROW) position = sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return fail(error_of(impl_->db, rc, "reading the relay checkpoint"));
  }
  return position;
}

Status<StoreError> SqliteRelayCheckpoint::save(std::int64_t position, TimestampMs saved_at_ms) {
  sqlite3_stmt* s = impl_->upsert;
  sqlite3_bind_text(s, 1, kRelayName.data(), static_cast<int>(kRelayName.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, position);
  sqlite3_bind_int64(s, 3, saved_at_ms);
  const int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return fail(error_of(impl_->db, rc, "saving the relay checkpoint"));
  return Ok{};
}

}  // namespace wallex
