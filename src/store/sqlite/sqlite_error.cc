#include "store/sqlite/sqlite_error.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "store/sqlite/page_cache.h"
#include "store/sqlite/sqlite_statement.h"
#include "store/sqlite/wal_vfs.h"

namespace wallex {

StoreErrorKind classify_sqlite_error(int code) {
  switch (code & 0xff) {
    case SQLITE_IOERR: return StoreErrorKind::kIo;
    case SQLITE_FULL: return StoreErrorKind::kFull;
    case SQLITE_CONSTRAINT: return StoreErrorKind::kConflict;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return StoreErrorKind::kCorrupt;
    default: return StoreErrorKind::kOther;
  }
}

StoreError sqlite_error(sqlite3* db, int code, std::string_view what) {
  return StoreError{classify_sqlite_error(code),
                    std::string(what) + ": " + sqlite3_errstr(code) + " (" +
                        (db != nullptr ? sqlite3_errmsg(db) : "") + ")"};
}

StoreError system_error(std::string_view what, int error) {
  return StoreError{StoreErrorKind::kIo,
                    std::string(what) + ": " + std::generic_category().message(error)};
}

int exec_while_busy(sqlite3* db, const char* sql) {
  constexpr int kTriesMax = 50;  // 100 ms apart
  for (int tries = 1;; ++tries) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= kTriesMax) return rc;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void close_without_checkpoint(sqlite3* db) {
  if (db != nullptr) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

Status<StoreError> fdatasync_file(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return fail(system_error("fdatasync of " + path + " failed", errno));
  return Ok{};
}

int open_sqlite(const char* path, sqlite3** db, int flags) {
  static std::once_flag configured;
  // SQLITE_MISUSE when SQLite was initialized already (by a connection not opened here): the
  // statistics then stay on and pcache1 runs alone, which costs speed only. The VFS comes last:
  // registering one initializes SQLite.
  std::call_once(configured, [] {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)install_page_cache();
    (void)install_wal_vfs();
  });
  return sqlite3_open_v2(path, db, flags, nullptr);
}

Status<StoreError> run_statement(sqlite3* db, SqliteStatement& statement, std::string_view what) {
  ResetOnExit reset(statement);
  const int rc = statement.step();
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, what));
  return Ok{};
}

namespace {

void text_hash(sqlite3_context* context, int, sqlite3_value** values) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(values[0]));
  if (text == nullptr) {
    sqlite3_result_null(context);
    return;
  }
  const auto size = static_cast<std::size_t>(sqlite3_value_bytes(values[0]));
  const auto hash =
      reinterpret_cast<std::int64_t (*)(std::string_view)>(sqlite3_user_data(context));
  sqlite3_result_int64(context, hash(std::string_view(text, size)));
}

}  // namespace

int create_text_hash_function(sqlite3* db, const char* name,
                              std::int64_t (*hash)(std::string_view)) {
  return sqlite3_create_function_v2(
      db, name, 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
      reinterpret_cast<void*>(hash), text_hash, nullptr, nullptr, nullptr);
}

}  // namespace wallex
