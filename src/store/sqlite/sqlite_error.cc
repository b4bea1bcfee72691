#include "store/sqlite/sqlite_error.h"

#include <sqlite3.h>

#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <string>
#include <system_error>

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

Status<StoreError> fdatasync_file(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return fail(system_error("fdatasync of " + path + " failed", errno));
  return Ok{};
}

int open_sqlite(const char* path, sqlite3** db, int flags) {
  static std::once_flag configured;
  // SQLITE_MISUSE when SQLite was initialized already (by a connection not opened here): the
  // statistics then stay on, which costs speed only.
  std::call_once(configured, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  return sqlite3_open_v2(path, db, flags, nullptr);
}

}  // namespace wallex
