#include "store/sqlite/sqlite_error.h"

#include <sqlite3.h>

#include <string>

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

}  // namespace wallex
