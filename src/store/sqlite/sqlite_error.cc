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

}  // namespace wallex
