// How an SQLite result code becomes a StoreError: the one mapping shared by the embedded store and
// the embedded read side, so a full disk, an I/O error or damage means the same in both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/store.h"

struct sqlite3;

namespace wallex {

class SqliteStatement;

// kIo for SQLITE_IOERR*, kFull, kConflict for constraint violations, kCorrupt for a damaged or
// foreign file, kOther for the rest (extended codes are reduced to their primary code).
StoreErrorKind classify_sqlite_error(int code);

// "<what>: <SQLite's text for code> (<the connection's last message>)"; db may be null.
StoreError sqlite_error(sqlite3* db, int code, std::string_view what);

// kIo "<what>: <the system's text for error>", for a system call on a store's file that failed.
StoreError system_error(std::string_view what, int error);

// fdatasync of a store's file (the WAL, through a read-only descriptor of its own: fdatasync works
// on the file, whichever descriptor wrote its pages); kIo naming the file when it fails.
Status<StoreError> fdatasync_file(int fd, const std::string& path);

// sqlite3_exec, tried again for up to 5 s (every 100 ms) while it fails with SQLITE_BUSY or
// SQLITE_LOCKED at once, as it does, without calling the busy handler, while another process
// switches the same new file to WAL mode. The last SQLite result code.
int exec_while_busy(sqlite3* db, const char* sql);

// Makes a connection close without the checkpoint SQLite runs when the last connection to a
// database closes: after a store has failed, nothing may write to its files again. db may be null.
void close_without_checkpoint(sqlite3* db);

// Steps a statement that returns no row and resets it; the error names `what`.
Status<StoreError> run_statement(sqlite3* db, SqliteStatement& statement, std::string_view what);

// Inserts rows 0..count-1: `group` rows with each step of `grouped` (its VALUES made by
// values_groups(columns, group)) while that many are left, the rest one by one with `single`.
// A failure leaves the rows before it written: the caller rolls its transaction back. So the
// statements say OR FAIL (or OR IGNORE), not the default OR ABORT, which for a statement of many
// rows makes SQLite copy every page the statement changes into a statement journal first, to
// undo that statement alone (for rows spread over a table's pages, a page copied per row),
// whatever the journal mode of the database.
// bind_row(statement, parameter, row) binds row `row` from parameter `parameter` on and returns
// the parameter after it.
template <typename BindRow>
Status<StoreError> insert_rows(sqlite3* db, SqliteStatement& grouped, std::size_t group,
                               SqliteStatement& single, std::size_t count, BindRow bind_row,
                               std::string_view what) {
  std::size_t row = 0;
  for (; row + group <= count; row += group) {
    int parameter = 1;
    for (std::size_t i = row; i < row + group; ++i) parameter = bind_row(grouped, parameter, i);
    if (auto s = run_statement(db, grouped, what); !s) return s;
  }
  for (; row < count; ++row) {
    bind_row(single, 1, row);
    if (auto s = run_statement(db, single, what); !s) return s;
  }
  return Ok{};
}

// Registers the deterministic SQL function `name`(text) → integer, computed by `hash` (NULL for a
// NULL argument): the keys Wallex derives from ids, for SQL that must compute them too.
int create_text_hash_function(sqlite3* db, const char* name,
                              std::int64_t (*hash)(std::string_view));

// sqlite3_open_v2 for every Wallex connection, after the process-wide configuration they share,
// applied once before SQLite initializes: no memory statistics (with them every allocation of
// SQLite takes a global mutex; nothing here reads them), and the page cache of page_cache.h.
int open_sqlite(const char* path, sqlite3** db, int flags);

}  // namespace wallex
