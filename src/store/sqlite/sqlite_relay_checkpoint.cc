#include "store/sqlite/sqlite_relay_checkpoint.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "store/sqlite/sqlite_error.h"

namespace wallex {
namespace {

constexpr std::string_view kRelayName = "wallet-events";

}  // namespace

struct SqliteRelayCheckpoint::Impl {
  int lock_fd = -1;  // relay.lock, flock'ed for as long as this relay lives
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* upsert = nullptr;
  ~Impl() {
    sqlite3_finalize(select);
    sqlite3_finalize(upsert);
    sqlite3_close_v2(db);
    if (lock_fd >= 0) close(lock_fd);  // releases the lock
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
  // One relay per data directory: two would both publish everything and race on relay.db. The
  // lock is the kernel's (flock), so a relay that dies, even by SIGKILL, releases it.
  const std::string lock_path = (std::filesystem::path(data_dir) / "relay.lock").string();
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) {
    return fail(system_error("cannot open " + lock_path, errno));
  }
  if (flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    return fail(StoreError{
        StoreErrorKind::kOther,
        error == EWOULDBLOCK
            ? "another relay (wallex serve --kafka-brokers or wallex relay) already publishes " +
                  data_dir + ": run one relay per data directory"
            : "cannot lock " + lock_path + ": " + std::strerror(error)});
  }
  const std::string path = path_in(data_dir);
  int rc =
      open_sqlite(path.c_str(), &impl->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, "opening " + path));
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, 5'000);
  rc = sqlite3_exec(impl->db,
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                    "CREATE TABLE IF NOT EXISTS relay_checkpoint ("
                    "  relay TEXT PRIMARY KEY,"
                    "  position INTEGER NOT NULL CHECK (position >= 0),"
                    "  updated_at_ms INTEGER NOT NULL) STRICT;",
                    nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, "creating the schema of " + path));
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
  if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, "preparing statements of " + path));
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
    return fail(sqlite_error(impl_->db, rc, "reading the relay checkpoint"));
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
  if (rc != SQLITE_DONE) return fail(sqlite_error(impl_->db, rc, "saving the relay checkpoint"));
  return Ok{};
}

}  // namespace wallex
