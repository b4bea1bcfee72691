#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "common/check.h"
#include "common/log.h"
#include "domain/replay.h"
#include "store/event_codec.h"
#include "store/sqlite/idempotency_records.h"
#include "store/sqlite/sqlite_error.h"
#include "store/sqlite/sqlite_statement.h"
#include "store/sqlite/wal_checkpointer.h"
#include "store/sqlite/wal_vfs.h"
#include "store/sqlite/write_model.h"

namespace wallex {
namespace {

// 'WALX': marks the file as a Wallex store, so a foreign SQLite file is refused at open.
constexpr int kApplicationId = 0x57414C58;

// One row while a snapshot of the write model is being written (SqliteStore::write): the
// position whose state the rows it wrote so far hold. Since schema version 5.
constexpr const char* kSnapshotUnderWayTable = R"sql(
CREATE TABLE snapshot_under_way (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  position INTEGER NOT NULL CHECK (position >= 0)
);
)sql";

constexpr const char* kSchema = R"sql(
CREATE TABLE events (
  position       INTEGER PRIMARY KEY,
  wallet_id      TEXT    NOT NULL,
  version        INTEGER NOT NULL CHECK (version >= 0),
  type           TEXT    NOT NULL,
  data           TEXT    NOT NULL,
  metadata       TEXT    NOT NULL,
  occurred_at_ms INTEGER NOT NULL
);
CREATE TABLE wallets (
  id            TEXT    PRIMARY KEY,
  owner_id      TEXT    NOT NULL,
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
  version       INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE write_model (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  position INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO write_model (id, position) VALUES (1, 0);
)sql";

// Schema version 1 had no write_model table: its wallets rows were written with every commit,
// so they reflect the whole log.
constexpr const char* kMigrateFrom1 = R"sql(
CREATE TABLE write_model (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  position INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO write_model (id, position) VALUES (1, (SELECT COALESCE(MAX(position), 0) FROM events));
PRAGMA user_version = 2;
)sql";

using Statement = SqliteStatement;

// A commit's events, kEventsPerInsert with one statement (SqliteStore::write), and the columns
// each binds. OR FAIL: no statement journal (insert_rows in sqlite_error.h).
constexpr std::size_t kEventsPerInsert = 16;
constexpr int kEventColumns = 7;
constexpr const char* kInsertEvent =
    "INSERT OR FAIL INTO events (position, wallet_id, version, type, data, metadata,"
    " occurred_at_ms) VALUES ";

// wallex.db's WAL (WalCheckpointer: the thread starts at 4,000 frames). The writer commits again
// before each background checkpoint ends, so the WAL seldom finds the moment to start over by
// itself, and every commit past 4,000 frames woke a checkpoint of its few frames (a wake-up and
// two fsyncs each). The thread is now woken once per 500 new frames, and past 16,000 frames
// (64 MiB, journal_size_limit) the writer copies what is left itself before its next commit,
// when the thread is idle: a pause of a few milliseconds, after which the WAL starts over
// (BENCHMARKS.md, "Checkpoint wake-ups of wallex.db").
constexpr int kCheckpointFramesToSettle = 16'000;
constexpr int kCheckpointFramesToRewake = 500;

// Set once the store has seen an I/O failure or damage, by the writer or the checkpointer. From
// then on nothing writes to the files again: commits are refused, no checkpoint runs, and the
// connections close without the checkpoint SQLite would otherwise run at close. A failed fsync
// is never retried (on Linux the retry can succeed although the data was lost: "fsyncgate"), and
// whatever the failed transaction left in the WAL is settled by recovery at the next start.
struct FailureLatch {
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::string reason;

  void set(const std::string& why) {
    std::lock_guard lock(mutex);
    if (failed.load()) return;
    reason = why;
    failed.store(true);
  }
  // Latches an I/O error or damage; other errors (a full disk, a conflict) leave the store usable.
  void set_if_fatal(const StoreError& error) {
    if (error.kind == StoreErrorKind::kIo || error.kind == StoreErrorKind::kCorrupt) {
      set(error.message);
    }
  }
  std::string why() {
    std::lock_guard lock(mutex);
    return reason;
  }
};

// One writer per data directory. Two stores open on the same files would each decide against
// their own memory (the wallets changed since the snapshot, the head of the log) and could both
// append version n+1 of a wallet: its money spent twice. The lock is the kernel's (flock on
// wallex.lock), held while the store is open and released even when the process is killed.
class DataDirLock {
 public:
  DataDirLock() = default;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status<StoreError> acquire(const std::string& data_dir) {
    const std::string path = (std::filesystem::path(data_dir) / "wallex.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return fail(system_error("cannot open " + path, errno));
    if (flock(fd_, LOCK_EX | LOCK_NB) == 0) return Ok{};
    const int error = errno;
    if (error != EWOULDBLOCK) return fail(system_error("cannot lock " + path, error));
    return fail(StoreError{StoreErrorKind::kOther,
                           "another process has the store in " + data_dir +
                               " open (wallex.lock is locked): one wallex serve per data directory"});
  }

 private:
  int fd_ = -1;
};

}  // namespace

struct SqliteStore::Impl {
  DataDirLock lock;  // declared first: released after both connections are closed
  FailureLatch failure;                        // outlives both connections
  std::unique_ptr<WalCheckpointer> checkpointer;  // declared first: destroyed after the writer's db
  sqlite3* db = nullptr;
  std::int64_t last_position = 0;  // single writer: the store knows the head of the log
  // The WAL, opened by us: sync() makes every frame the writer connection wrote before it
  // durable (fdatasync works on the file, whichever descriptor wrote its pages).
  std::string wal_path;
  int wal_fd = -1;
  // The write model on disk is a snapshot: the wallets table as of snapshot_position, written
  // every few commits, not with every one. `changed` holds the wallets the log changed after it,
  // in memory; at open they are replayed from the log (read_write_model).
  std::int64_t snapshot_position = 0;
  std::unordered_map<std::string, WalletState> changed;
  // A snapshot under way, written a slice per commit (SqliteStore::write): the wallets changed
  // before it began (ids sorted: a slice's rows share pages), the versions their rows were
  // written at so far, and the position it began at, whose state every row it writes holds:
  // `frozen` keeps that state for the wallets changed since whose rows are not written yet.
  // Its rows are ahead of snapshot_position until it ends (the table snapshot_under_way names
  // the position they hold, for the replay at open).
  std::vector<std::string> flush_ids;
  std::vector<std::int64_t> flush_versions;  // one per row written, in flush_ids order
  std::unordered_map<std::string, WalletState> frozen;
  std::int64_t flush_position = 0;
  OpenOptions options;
  Statement insert_event, insert_events, upsert_wallet, select_version, set_snapshot_position,
      begin_snapshot, end_snapshot, select_wallets, select_wallet, read_events, max_position, begin,
      commit, rollback, begin_read;
  IdempotencyRecords idempotency;  // the records and their index (idempotency_records.h)

  ~Impl() {
    if (wal_fd >= 0) ::close(wal_fd);
    if (failure.failed.load()) close_without_checkpoint(db);
    // Statements must be finalized before the connection closes; the members' destructors run
    // after this body, so close through sqlite3_close_v2, which defers until they are gone.
    sqlite3_close_v2(db);
  }

  // Steps a statement that returns no row, and resets it.
  Status<StoreError> run(Statement& s, std::string_view what) { return run_statement(db, s, what); }

  // Latches a fatal error (I/O, damage) so that nothing writes to the files again.
  StoreError latch(StoreError error) {
    failure.set_if_fatal(error);
    return error;
  }

  // kIo once the store has failed: a commit after a failure would write and fsync again.
  Status<StoreError> refuse_if_failed() {
    if (!failure.failed.load()) return Ok{};
    return fail(StoreError{StoreErrorKind::kIo,
                           "the store failed earlier and accepts no more writes: " + failure.why()});
  }

  // PRAGMA quick_check: every page of every table and index is well-formed and accounted for
  // (not that indexes match their tables: that is integrity_check, and O(N log N)). Catches a
  // truncated file or overwritten pages before anything is served from them.
  Status<StoreError> check_integrity(const std::string& path) {
    Statement statement;
    int rc = statement.prepare(db, "PRAGMA quick_check(10)");
    if (rc != SQLITE_OK) return fail(damaged(path, sqlite_error(db, rc, "quick_check").message));
    std::string problems;
    while ((rc = statement.step()) == SQLITE_ROW) {
      const std::string_view line = statement.text(0);
      if (line == "ok") continue;
      problems += problems.empty() ? "" : "; ";
      problems += line;
    }
    if (rc != SQLITE_DONE) return fail(damaged(path, sqlite_error(db, rc, "quick_check").message));
    if (!problems.empty()) return fail(damaged(path, problems));
    return Ok{};
  }

  static StoreError damaged(const std::string& path, const std::string& detail) {
    return StoreError{StoreErrorKind::kCorrupt,
                      path + " is damaged and will not be served (integrity check: " + detail +
                          "). Restore it from a backup."};
  }

  Status<StoreError> exec(const char* sql, std::string_view what) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return Ok{};
    StoreError error{classify_sqlite_error(rc), std::string(what) + ": " + (message ? message : sqlite3_errstr(rc))};
    sqlite3_free(message);
    return fail(std::move(error));
  }

  Result<std::int64_t, StoreError> pragma_int(const char* sql) {
    Statement statement;
    int rc = statement.prepare(db, sql);
    if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
    rc = statement.step();
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, sql));
    return statement.int64(0);
  }

  Status<StoreError> prepare_all() {
    const std::string insert_one = kInsertEvent + values_groups(kEventColumns, 1);
    const std::string insert_many = kInsertEvent + values_groups(kEventColumns, kEventsPerInsert);
    const std::pair<Statement*, const char*> statements[] = {
        {&insert_event, insert_one.c_str()},
        {&insert_events, insert_many.c_str()},
        {&upsert_wallet,
         "INSERT INTO wallets (id, owner_id, balance_minor, version, created_at_ms, updated_at_ms)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET balance_minor ="
         " excluded.balance_minor, version = excluded.version, updated_at_ms = "
         "excluded.updated_at_ms"},
        {&select_version, "SELECT version FROM wallets WHERE id = ?1"},
        {&set_snapshot_position, "UPDATE write_model SET position = ?1 WHERE id = 1"},
        {&begin_snapshot,
         "INSERT OR REPLACE INTO snapshot_under_way (id, position) VALUES (1, ?1)"},
        {&end_snapshot, "DELETE FROM snapshot_under_way"},
        {&select_wallets,
         "SELECT id, owner_id, balance_minor, version, created_at_ms, updated_at_ms FROM wallets"
         " ORDER BY id"},
        {&select_wallet,
         "SELECT id, owner_id, balance_minor, version, created_at_ms, updated_at_ms FROM wallets"
         " WHERE id = ?1"},
        {&read_events,
         "SELECT position, wallet_id, version, type, data, metadata FROM events"
         " WHERE position > ?1 ORDER BY position LIMIT ?2"},
        {&max_position, "SELECT COALESCE(MAX(position), 0) FROM events"},
        {&begin, "BEGIN IMMEDIATE"},
        {&begin_read, "BEGIN"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
    };
    for (const auto& [statement, sql] : statements) {
      const int rc = statement->prepare(db, sql);
      if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "preparing statements"));
    }
    return Ok{};
  }

  Status<StoreError> check_schema(const std::string& path) {
    auto application_id = pragma_int("PRAGMA application_id");
    if (!application_id) return fail(application_id.error());
    auto user_version = pragma_int("PRAGMA user_version");
    if (!user_version) return fail(user_version.error());
    auto table_count = pragma_int("SELECT count(*) FROM sqlite_schema");
    if (!table_count) return fail(table_count.error());

    // A new store is created whole under another name and renamed into place (create_store_file),
    // so an existing wallex.db without a schema is a damaged one (truncated to nothing, replaced
    // by an empty file), never a store to initialize: that would serve an empty ledger.
    if (application_id.value() == 0 && user_version.value() == 0 && table_count.value() == 0) {
      return fail(StoreError{StoreErrorKind::kCorrupt,
                             path + " exists but holds no Wallex store (empty or truncated); "
                                    "restore it from a backup, or remove it to start a new store"});
    }
    if (application_id.value() != kApplicationId) {
      return fail(StoreError{StoreErrorKind::kCorrupt, path + " is not a Wallex store"});
    }
    if (user_version.value() > kSqliteSchemaVersion) {
      return fail(StoreError{StoreErrorKind::kSchemaTooNew,
                             path + " was written by schema version " +
                                 std::to_string(user_version.value()) +
                                 "; this wallex understands up to version " +
                                 std::to_string(kSqliteSchemaVersion) + ". Upgrade wallex."});
    }
    if (user_version.value() < 1) {
      return fail(StoreError{StoreErrorKind::kCorrupt, path + " has no Wallex schema version"});
    }
    return Ok{};
  }

  // The wallet's version in the snapshot (nullopt: no row), for a wallet not in `changed`.
  Result<std::optional<std::int64_t>, StoreError> snapshot_version(const std::string& id) {
    Statement& s = select_version;
    ResetOnExit reset(s);
    s.bind(1, id);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return std::optional<std::int64_t>();
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, "reading a wallet's version"));
    return std::optional<std::int64_t>(s.int64(0));
  }

  Status<StoreError> write_row(const WalletState& wallet) {
    bind_wallet_columns(upsert_wallet, wallet);
    return run(upsert_wallet, "writing the write model's snapshot");
  }

  Status<StoreError> move_snapshot(std::int64_t position) {
    set_snapshot_position.bind(1, position);
    return run(set_snapshot_position, "moving the write model's snapshot");
  }

  // Writes every wallet changed since the last snapshot in id order and moves the snapshot to
  // `position` (the last of the log): a whole snapshot in one transaction, at close.
  Status<StoreError> write_snapshot(std::int64_t position) {
    std::vector<const WalletState*> ordered;
    ordered.reserve(changed.size());
    for (const auto& [id, state] : changed) ordered.push_back(&state);
    std::sort(ordered.begin(), ordered.end(),
              [](const WalletState* a, const WalletState* b) { return a->id < b->id; });
    for (const WalletState* wallet : ordered) {
      if (auto st = write_row(*wallet); !st) return st;
    }
    return move_snapshot(position);
  }

  Result<std::vector<StoredEvent>, StoreError> collect_events(Statement& statement) {
    std::vector<StoredEvent> events;
    int rc = SQLITE_OK;
    while ((rc = statement.step()) == SQLITE_ROW) {
      auto decoded = decode_stored_event(statement.int64(0), statement.text(1), statement.int64(2),
                                         statement.text(3), statement.text(4), statement.text(5));
      if (!decoded) return fail(StoreError{StoreErrorKind::kCorrupt, decoded.error()});
      events.push_back(std::move(decoded).value());
    }
    if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, "reading events"));
    return events;
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
// A store that closes in good order leaves its snapshot complete, so that the next open replays
// nothing. Not needed for correctness: if this fails, or the process dies first, the next open
// replays the events after the older snapshot.
SqliteStore::~SqliteStore() {
  Impl& impl = *impl_;
  if (!impl.options.snapshot_at_close || impl.failure.failed.load() ||
      (impl.changed.empty() && impl.flush_ids.empty() &&
       impl.snapshot_position == impl.last_position)) {
    return;
  }
  Status<StoreError> written = impl.run(impl.begin, "begin");
  if (written) written = impl.write_snapshot(impl.last_position);
  if (written) written = impl.run(impl.end_snapshot, "ending the snapshot under way");
  if (written) written = impl.run(impl.commit, "commit");
  if (!written) {
    (void)impl.run(impl.rollback, "rollback");
    log::warn("the write model's snapshot was not written at close (the next start replays the "
              "log after the older one): " + written.error().message);
  }
}

namespace {

Status<StoreError> sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(StoreError{StoreErrorKind::kIo, "cannot open " + dir + " to sync it"});
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return fail(StoreError{StoreErrorKind::kIo, "cannot sync directory " + dir});
  return Ok{};
}

// Creates a new, empty store at `path`: written and fsync'd as `path`.new, then renamed into
// place and the directory fsync'd. A crash leaves either no wallex.db or a complete one.
Status<StoreError> create_store_file(const std::string& data_dir, const std::string& path) {
  const std::string temporary = path + ".new";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::error_code ignored;
    std::filesystem::remove(temporary + suffix, ignored);  // a creation that crashed
  }
  sqlite3* db = nullptr;
  int rc = open_sqlite(temporary.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  if (rc == SQLITE_OK) {
    const std::string script = std::string(
                                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                   " BEGIN IMMEDIATE;") +
                               kSchema + kSnapshotUnderWayTable + IdempotencyRecords::schema() +
                               "PRAGMA application_id = " + std::to_string(kApplicationId) +
                               "; PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion) +
                               "; COMMIT;";
    rc = sqlite3_exec(db, script.c_str(), nullptr, nullptr, nullptr);
  }
  StoreError error = rc == SQLITE_OK ? StoreError{} : sqlite_error(db, rc, "creating " + temporary);
  // Closing the only connection checkpoints the WAL into the file and fsyncs it.
  if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK) {
    rc = SQLITE_IOERR;
    error = StoreError{StoreErrorKind::kIo, "closing " + temporary};
  }
  if (rc != SQLITE_OK) return fail(std::move(error));
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    return fail(StoreError{StoreErrorKind::kIo, "renaming " + temporary + ": " + ec.message()});
  }
  return sync_directory(data_dir);
}

}  // namespace

Result<std::unique_ptr<SqliteStore>, StoreError> SqliteStore::open(const std::string& data_dir,
                                                                   OpenOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return fail(StoreError{StoreErrorKind::kIo, "cannot create data directory " + data_dir + ": " +
                                                    ec.message()});
  }
  auto impl = std::make_unique<Impl>();
  if (auto locked = impl->lock.acquire(data_dir); !locked) return fail(locked.error());
  const std::string path = (std::filesystem::path(data_dir) / "wallex.db").string();
  if (!std::filesystem::exists(path)) {
    if (std::filesystem::exists(path + "-wal")) {
      return fail(StoreError{StoreErrorKind::kCorrupt,
                             path + " is missing but its write-ahead log " + path +
                                 "-wal exists: the store was damaged or partly deleted; restore "
                                 "it from a backup"});
    }
    if (auto created = create_store_file(data_dir, path); !created) return fail(created.error());
  }
  int rc = open_sqlite(path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, "opening " + path));
  sqlite3_extended_result_codes(impl->db, 1);
  // The syncer fdatasyncs this connection's WAL after every batch: writeback in steps would only
  // move the kernel's part of that work onto the writer, and a WAL that grows with every commit
  // would make each of those fdatasyncs write the inode too (wal_vfs.h). NOTFOUND: another VFS.
  (void)sqlite3_file_control(impl->db, "main", kFileControlWalWritebackOff, nullptr);
  (void)sqlite3_file_control(impl->db, "main", kFileControlWalPreallocate, nullptr);

  // Everything is read and checked before anything is written: setting journal_mode would
  // write to a file that is not yet in WAL mode (a store is created in WAL mode, so a Wallex
  // store never needs that write).
  // SQLite's own word for damage ("database disk image is malformed") becomes a message that
  // says what it means for the service.
  const auto refuse = [&path](StoreError error) {
    if (error.kind == StoreErrorKind::kCorrupt && error.message.rfind(path, 0) != 0) {
      return Impl::damaged(path, error.message);
    }
    return error;
  };
  if (auto s = impl->check_schema(path); !s) return fail(refuse(s.error()));
  if (options.check_integrity) {
    if (auto s = impl->check_integrity(path); !s) return fail(s.error());
  }
  if (auto s = impl->exec("PRAGMA journal_mode = WAL", "opening " + path); !s) {
    return fail(refuse(s.error()));
  }
  // synchronous=NORMAL: a commit writes its WAL frames without syncing them; sync() does that,
  // on the service's syncing thread while the writer goes on (SqliteStore::write). Checkpoints
  // still sync the WAL before copying it and the database file after (SQLite does that for
  // NORMAL as for FULL), so nothing is copied into the database before it is durable.
  if (auto s = impl->exec("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; PRAGMA journal_size_limit = 67108864;"
                          " PRAGMA foreign_keys = OFF; PRAGMA busy_timeout = 5000",
                          "configuring " + path);
      !s) {
    return fail(s.error());
  }
  auto user_version = impl->pragma_int("PRAGMA user_version");
  if (!user_version) return fail(user_version.error());
  if (user_version.value() == 1) {
    const std::string script = std::string("BEGIN IMMEDIATE;") + kMigrateFrom1 + "COMMIT;";
    if (auto s = impl->exec(script.c_str(), "migrating " + path + " to schema version 2"); !s) {
      return fail(s.error());
    }
  }
  if (user_version.value() < 3) {
    // 2 to 3: nothing but the number (sqlite_store.h).
    if (auto s = impl->exec("PRAGMA user_version = 3;", "moving " + path + " to schema version 3");
        !s) {
      return fail(s.error());
    }
  }
  if (user_version.value() < 4) {
    if (const int code = IdempotencyRecords::register_functions(impl->db); code != SQLITE_OK) {
      return fail(sqlite_error(impl->db, code, "registering wallex_key_hash"));
    }
    const std::string script = std::string("BEGIN IMMEDIATE;") +
                               IdempotencyRecords::migration_from_keys_table() +
                               "PRAGMA user_version = 4; COMMIT;";
    if (auto s = impl->exec(script.c_str(), "migrating " + path + " to schema version 4"); !s) {
      (void)impl->exec("ROLLBACK", "rollback");
      return fail(s.error());
    }
  }
  if (user_version.value() < 5) {
    const std::string script = std::string("BEGIN IMMEDIATE;") + kSnapshotUnderWayTable +
                               "PRAGMA user_version = 5; COMMIT;";
    if (auto s = impl->exec(script.c_str(), "migrating " + path + " to schema version 5"); !s) {
      (void)impl->exec("ROLLBACK", "rollback");
      return fail(s.error());
    }
  }
  impl->options = options;
  if (auto s = impl->prepare_all(); !s) return fail(s.error());
  // The checkpoint connection fsyncs the database file before the WAL may be reused
  // (synchronous=FULL). A failed write or fsync of the database file latches the failure: the
  // writer's next commit fails fatally.
  FailureLatch& failure = impl->failure;
  impl->checkpointer = std::make_unique<WalCheckpointer>(WalCheckpointer::Options{
      .path = path,
      .thread_name = "wallex-checkpt",
      .synchronous = "FULL",
      .frames_to_settle = kCheckpointFramesToSettle,
      .settle_waits = false,
      .frames_to_rewake = kCheckpointFramesToRewake,
      .failed = [&failure] { return failure.failed.load(); },
      .on_error =
          [&failure](int code, const std::string& message) {
            failure.set_if_fatal(StoreError{classify_sqlite_error(code), message});
          }});
  if (auto s = impl->checkpointer->start(); !s) return fail(s.error());
  impl->checkpointer->attach(impl->db);
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
  auto last = store->last_position();  // the first read opens (or creates) the WAL
  if (!last) return fail(last.error());
  store->impl_->last_position = last.value();
  store->impl_->wal_path = path + "-wal";
  store->impl_->wal_fd = ::open(store->impl_->wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (store->impl_->wal_fd < 0) {
    return fail(system_error("cannot open " + store->impl_->wal_path, errno));
  }
  // Commits of an earlier process that was killed before syncing them are in the log now and
  // will be served and projected: make them durable first.
  if (auto synced = store->sync(); !synced) return fail(synced.error());
  auto image = read_write_model(store->impl_->db);
  if (!image) return fail(refuse(image.error()));
  store->impl_->snapshot_position = image.value().snapshot_position;
  store->impl_->changed = std::move(image.value().changed);
  IdempotencyRecords::Tuning tuning;
  tuning.merge_records = options.idempotency_merge_records;
  tuning.merge_chunk = options.idempotency_merge_chunk;
  tuning.filter_bits_log2 = options.idempotency_filter_bits_log2;
  tuning.filter_chunk = options.idempotency_filter_chunk;
  if (auto s = store->impl_->idempotency.open(store->impl_->db, tuning); !s)
    return fail(refuse(s.error()));
  return store;
}

Status<StoreError> SqliteStore::check_integrity(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "wallex.db").string();
  if (!std::filesystem::exists(path)) {
    return fail(StoreError{StoreErrorKind::kIo, path + " does not exist"});
  }
  Impl impl;
  const int rc = open_sqlite(path.c_str(), &impl.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  if (rc != SQLITE_OK) return fail(sqlite_error(impl.db, rc, "opening " + path));
  return impl.check_integrity(path);
}

namespace {

WalletState wallet_from_row(const Statement& s) {
  WalletState w;
  w.id = std::string(s.text(0));
  w.owner_id = std::string(s.text(1));
  w.balance = Money::from_minor(s.int64(2));
  w.version = s.int64(3);
  w.created_at_ms = s.int64(4);
  w.updated_at_ms = s.int64(5);
  return w;
}

// Every row of the wallets table, by id, through `s` (SELECT kWalletColumns ... ORDER BY id).
Status<StoreError> read_wallet_rows(sqlite3* db, Statement& s, std::vector<WalletState>& rows) {
  ResetOnExit reset(s);
  int rc = SQLITE_OK;
  while ((rc = s.step()) == SQLITE_ROW) rows.push_back(wallet_from_row(s));
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, "loading wallets"));
  return Ok{};
}

}  // namespace

void bind_wallet_columns(SqliteStatement& statement, const WalletState& wallet) {
  statement.bind(1, wallet.id);
  statement.bind(2, wallet.owner_id);
  statement.bind(3, wallet.balance.minor());
  statement.bind(4, wallet.version);
  statement.bind(5, wallet.created_at_ms);
  statement.bind(6, wallet.updated_at_ms);
}

std::vector<WalletState> current_wallets(const std::vector<WalletState>& snapshot,
                                         const std::unordered_map<std::string, WalletState>& changed) {
  std::vector<WalletState> all;
  all.reserve(snapshot.size() + changed.size());
  for (const WalletState& row : snapshot) {
    if (!changed.contains(row.id)) all.push_back(row);
  }
  for (const auto& [id, state] : changed) all.push_back(state);
  std::sort(all.begin(), all.end(),
            [](const WalletState& a, const WalletState& b) { return a.id < b.id; });
  return all;
}

Result<WriteModelImage, StoreError> read_write_model(sqlite3* db) {
  const bool own_transaction = sqlite3_get_autocommit(db) != 0;
  const auto query = [db](Statement& s, const char* sql) -> Status<StoreError> {
    const int rc = s.prepare(db, sql);
    if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "reading the write model"));
    return Ok{};
  };
  Statement begin, end, version, position, under_way, rows, events;
  if (auto st = query(version, "PRAGMA user_version"); !st) return fail(st.error());
  if (own_transaction) {
    if (auto st = query(begin, "BEGIN"); !st) return fail(st.error());
    if (auto st = query(end, "COMMIT"); !st) return fail(st.error());
    if (const int rc = begin.step(); rc != SQLITE_DONE) return fail(sqlite_error(db, rc, "begin read"));
  }
  auto read = [&]() -> Result<WriteModelImage, StoreError> {
    WriteModelImage image;
    if (const int rc = version.step(); rc != SQLITE_ROW) return fail(sqlite_error(db, rc, "user_version"));
    const bool has_snapshot_position = version.int64(0) >= 2;
    if (has_snapshot_position) {
      if (auto st = query(position, "SELECT position FROM write_model WHERE id = 1"); !st) {
        return fail(st.error());
      }
      const int rc = position.step();
      if (rc != SQLITE_ROW) {
        return fail(rc == SQLITE_DONE ? StoreError{StoreErrorKind::kCorrupt,
                                                   "the write model's snapshot position is missing"}
                                      : sqlite_error(db, rc, "reading the snapshot position"));
      }
      image.snapshot_position = position.int64(0);
    }
    // A snapshot under way (schema version 5): its rows hold the state of this position.
    std::optional<std::int64_t> under_way_position;
    if (version.int64(0) >= 5) {
      if (auto st = query(under_way, "SELECT position FROM snapshot_under_way WHERE id = 1"); !st) {
        return fail(st.error());
      }
      const int rc = under_way.step();
      if (rc == SQLITE_ROW) {
        under_way_position = under_way.int64(0);
      } else if (rc != SQLITE_DONE) {
        return fail(sqlite_error(db, rc, "reading the snapshot under way"));
      }
    }
    if (auto st = query(rows, "SELECT id, owner_id, balance_minor, version, created_at_ms,"
                              " updated_at_ms FROM wallets ORDER BY id");
        !st) {
      return fail(st.error());
    }
    if (auto st = read_wallet_rows(db, rows, image.snapshot); !st) return fail(st.error());
    if (!has_snapshot_position) return image;

    // The rows of the wallets the events touch, found by id (the snapshot is sorted by id).
    const auto snapshot_row = [&image](const std::string& id) -> const WalletState* {
      const auto it = std::lower_bound(
          image.snapshot.begin(), image.snapshot.end(), id,
          [](const WalletState& row, const std::string& key) { return row.id < key; });
      return it != image.snapshot.end() && it->id == id ? &*it : nullptr;
    };
    if (auto st = query(events, "SELECT position, wallet_id, version, type, data, metadata"
                                " FROM events WHERE position > ?1 ORDER BY position");
        !st) {
      return fail(st.error());
    }
    events.bind(1, image.snapshot_position);
    const auto refused = [](std::int64_t at, const std::string& why) {
      return StoreError{StoreErrorKind::kCorrupt,
                        "the log does not continue the write model's snapshot at position " +
                            std::to_string(at) + ": " + why};
    };
    const auto row_ahead = [&](const std::string& wallet, std::int64_t first) {
      return refused(first, "the row of wallet " + wallet + " is ahead of its state at position " +
                                std::to_string(*under_way_position));
    };
    // A snapshot under way (written in slices, SqliteStore::write) has rows as of its own
    // position, ahead of the snapshot's. The events up to that position that such a row holds
    // already are passed over, in unbroken order, up to the one that made its version; a row
    // whose version the wallet's events up to that position do not reach is damage. Passed over
    // so far: wallet → (position of the first one, the version the next must have).
    std::unordered_map<std::string, std::pair<std::int64_t, std::int64_t>> passing;
    int rc = SQLITE_OK;
    while ((rc = events.step()) == SQLITE_ROW) {
      const std::int64_t event_position = events.int64(0);
      auto decoded = decode_stored_event(event_position, events.text(1), events.int64(2),
                                         events.text(3), events.text(4), events.text(5));
      if (!decoded) return fail(StoreError{StoreErrorKind::kCorrupt, decoded.error()});
      const Event& event = decoded.value().event;
      std::optional<WalletState> before;
      if (const auto it = image.changed.find(event.wallet_id); it != image.changed.end()) {
        before = it->second;
      } else if (const WalletState* row = snapshot_row(event.wallet_id)) {
        if (under_way_position && event_position <= *under_way_position &&
            event.version <= row->version) {
          const auto held =
              passing.try_emplace(event.wallet_id, event_position, event.version).first;
          if (held->second.second != event.version) {
            return fail(refused(event_position, "wallet " + event.wallet_id + " has version " +
                                                    std::to_string(event.version) + " where " +
                                                    std::to_string(held->second.second) +
                                                    " was due"));
          }
          held->second.second = event.version + 1;
          if (event.version == row->version) {  // the row's state: the next event continues it
            passing.erase(held);
            image.changed.emplace(event.wallet_id, *row);
          }
          continue;
        }
        before = *row;
      }
      if (const auto held = passing.find(event.wallet_id); held != passing.end()) {
        return fail(row_ahead(event.wallet_id, held->second.first));
      }
      auto after = replay(before, event);
      if (!after) return fail(refused(event_position, after.error()));
      image.changed.insert_or_assign(event.wallet_id, std::move(after).value());
    }
    if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, "reading events"));
    if (!passing.empty()) {
      const auto earliest = std::min_element(
          passing.begin(), passing.end(),
          [](const auto& a, const auto& b) { return a.second.first < b.second.first; });
      return fail(row_ahead(earliest->first, earliest->second.first));
    }
    return image;
  };
  auto image = read();
  if (own_transaction) {
    version.reset();
    events.reset();
    position.reset();
    under_way.reset();
    const int rc = end.step();
    if (rc != SQLITE_DONE && image) return fail(sqlite_error(db, rc, "end read"));
  }
  return image;
}

// The snapshot's rows with the wallets changed since it, which this store keeps in memory (open()
// replayed them from the log, write() keeps them current): no replay here.
Result<std::vector<WalletState>, StoreError> SqliteStore::load_wallets() {
  std::vector<WalletState> rows;
  if (auto st = read_wallet_rows(impl_->db, impl_->select_wallets, rows); !st) {
    return fail(st.error());
  }
  return current_wallets(rows, impl_->changed);
}

Result<std::vector<WalletState>, StoreError> SqliteStore::read_wallets(
    const std::vector<std::string>& ids) {
  Statement& s = impl_->select_wallet;
  std::vector<WalletState> wallets;
  for (const std::string& id : ids) {
    if (const auto it = impl_->changed.find(id); it != impl_->changed.end()) {
      wallets.push_back(it->second);
      continue;
    }
    ResetOnExit reset(s);
    s.bind(1, id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) {
      wallets.push_back(wallet_from_row(s));
    } else if (rc != SQLITE_DONE) {
      return fail(impl_->latch(sqlite_error(impl_->db, rc, "reading wallets")));
    }
  }
  return wallets;
}

Result<std::optional<IdempotencyRecord>, StoreError> SqliteStore::find_idempotency(
    std::string_view key) {
  return impl_->idempotency.find(key);
}

Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> SqliteStore::find_idempotency_many(
    const std::vector<std::string>& keys) {
  // One read transaction for all lookups: each autocommit read would take and release the WAL
  // read lock (two fcntl calls) on its own. Prepared statements: sqlite3_exec would parse the
  // SQL of BEGIN and COMMIT again for every batch.
  Impl& impl = *impl_;
  std::vector<std::optional<IdempotencyRecord>> records;
  // Mostly new keys: answered from memory, no transaction at all.
  if (std::none_of(keys.begin(), keys.end(),
                   [&](const std::string& key) { return impl.idempotency.may_exist(key); })) {
    records.resize(keys.size());
    return records;
  }
  if (auto s = impl.run(impl.begin_read, "begin read"); !s) return fail(impl.latch(s.error()));
  records.reserve(keys.size());
  for (const std::string& key : keys) {
    auto record = find_idempotency(key);
    if (!record) {
      (void)impl.run(impl.rollback, "end read");
      return fail(impl.latch(record.error()));
    }
    records.push_back(std::move(record).value());
  }
  if (auto s = impl.run(impl.commit, "end read"); !s) return fail(impl.latch(s.error()));
  return records;
}

std::int64_t SqliteStore::idempotency_index_reads() const {
  return impl_->idempotency.index_reads();
}

std::int64_t SqliteStore::idempotency_filter_rebuilds() const {
  return impl_->idempotency.filter_rebuilds();
}

Result<CommitResult, StoreError> SqliteStore::commit(const CommitBatch& batch) {
  auto written = write(batch);
  if (!written) return written;
  if (auto synced = sync(); !synced) return fail(synced.error());
  return written;
}

Status<StoreError> SqliteStore::sync() {
  Impl& impl = *impl_;
  // Never after a failure: a second fsync of a file whose first one failed can succeed although
  // the data is gone ("fsyncgate").
  if (auto s = impl.refuse_if_failed(); !s) return s;
  if (auto synced = fdatasync_file(impl.wal_fd, impl.wal_path); !synced) {
    return fail(impl.latch(synced.error()));
  }
  // A background checkpoint that failed meanwhile (its own fsync of the WAL, say) may have
  // consumed the error of writes this sync covers: kernels before Linux 4.13 report a writeback
  // error to one descriptor only. Whatever this fdatasync said, nothing it covers is durable then.
  if (impl.failure.failed.load()) {
    return fail(StoreError{StoreErrorKind::kIo,
                           "sync: the store failed while it ran: " + impl.failure.why()});
  }
  return Ok{};
}

Result<CommitResult, StoreError> SqliteStore::write(const CommitBatch& batch) {
  Impl& impl = *impl_;
  auto rollback = [&](StoreError error) -> Result<CommitResult, StoreError> {
    // After an I/O error SQLite may already have rolled back; a failing ROLLBACK changes nothing.
    // (A rollback in WAL mode writes nothing: the frames of the failed commit stay past the end
    // of the committed log, and recovery at the next start decides whether they form a commit.)
    (void)impl.run(impl.rollback, "rollback");
    impl.idempotency.rolled_back();
    return fail(impl.latch(std::move(error)));
  };
  if (auto s = impl.refuse_if_failed(); !s) return fail(s.error());

  // The lost-update guard: every event of a wallet must continue that wallet's versions from
  // the version the batch was decided against, and the write-model row must still be at that
  // version when it is updated. Together these make versions contiguous and unique without a
  // per-wallet index on the log (whose random page writes would double the cost of a commit).
  std::unordered_map<std::string_view, std::int64_t> next_version;
  next_version.reserve(batch.wallets.size());
  for (const WalletWrite& write : batch.wallets) {
    next_version.emplace(write.state.id, write.expected_version + 1);
  }
  if (const int rc = impl.checkpointer->settle(impl.db); rc != SQLITE_OK) {
    // A failed write or fsync of the files is fatal, as in any commit; anything else (a full
    // disk) leaves the WAL longer, and the commit goes on.
    StoreError error = impl.latch(sqlite_error(impl.db, rc, "checkpoint before a commit"));
    if (impl.failure.failed.load()) return fail(std::move(error));
    log::warn(error.message);
  }
  if (auto s = impl.run(impl.begin, "begin"); !s) return fail(impl.latch(s.error()));
  CommitResult result;
  result.entry_positions.reserve(batch.entries.size());
  // The events are appended once every version is checked, kEventsPerInsert with one statement, the
  // rest one by one; their documents live in `documents` until then (bound without a copy).
  std::size_t events = 0;
  for (const CommitBatch::Entry& entry : batch.entries) events += entry.events.size();
  std::vector<EventDocuments> documents;
  documents.reserve(events);
  std::vector<std::pair<std::int64_t, const Event*>> appending;
  appending.reserve(events);
  std::int64_t position = impl.last_position;
  for (const CommitBatch::Entry& entry : batch.entries) {
    for (const Event& event : entry.events) {
      const auto next = next_version.find(event.wallet_id);
      if (next == next_version.end() || next->second != event.version) {
        return rollback(StoreError{StoreErrorKind::kConflict,
                                   "event version " + std::to_string(event.version) +
                                       " does not continue wallet " + event.wallet_id});
      }
      ++next->second;
      ++position;
      appending.emplace_back(position, &event);
      documents.push_back(
          EventDocuments{encode_event_data(event), encode_event_metadata(event, entry.metadata)});
    }
    const std::int64_t entry_position = entry.events.empty() ? 0 : position;
    result.entry_positions.push_back(entry_position);
    if (entry.idempotency) impl.idempotency.append(*entry.idempotency, entry_position);
  }
  const auto bind_event = [&](Statement& s, int parameter, std::size_t i) {
    const auto& [event_position, event] = appending[i];
    s.bind(parameter++, event_position);
    s.bind(parameter++, event->wallet_id);
    s.bind(parameter++, event->version);
    s.bind(parameter++, event_type_name(event->type));
    s.bind(parameter++, documents[i].data_json);
    s.bind(parameter++, documents[i].metadata_json);
    s.bind(parameter++, event->occurred_at_ms);
    return parameter;
  };
  if (auto st = insert_rows(impl.db, impl.insert_events, kEventsPerInsert, impl.insert_event,
                            appending.size(), bind_event, "appending events");
      !st) {
    return rollback(st.error());
  }
  if (batch.keep_documents) result.documents = std::move(documents);
  std::size_t newly_changed = 0;  // wallets of this batch not changed since the snapshot
  for (const WalletWrite& write : batch.wallets) {
    const WalletState& wallet = write.state;
    if (next_version.at(wallet.id) != wallet.version + 1) {
      return rollback(StoreError{StoreErrorKind::kConflict,
                                 "write model of wallet " + wallet.id + " at version " +
                                     std::to_string(wallet.version) + " does not match its events"});
    }
    // The wallet's version now (nullopt: no such wallet): from `changed`, else the snapshot's.
    std::optional<std::int64_t> current;
    if (const auto known = impl.changed.find(wallet.id); known != impl.changed.end()) {
      current = known->second.version;
    } else {
      auto stored = impl.snapshot_version(wallet.id);
      if (!stored) return rollback(stored.error());
      current = stored.value();
      ++newly_changed;
    }
    if (write.expected_version < 0 && current) {
      return rollback(StoreError{StoreErrorKind::kConflict, "wallet " + wallet.id + " exists already"});
    }
    if (write.expected_version >= 0 && current != write.expected_version) {
      return rollback(StoreError{StoreErrorKind::kConflict,
                                 "wallet " + wallet.id + " is no longer at version " +
                                     std::to_string(write.expected_version)});
    }
  }
  // The snapshot, a slice per commit. One begins with the commit that ends snapshot_events_max
  // or more events after the last, or that would leave more than snapshot_wallets_max wallets
  // changed since it: it takes the wallets changed until then, this batch's included, and this
  // commit and the next write their rows as of this commit, in id order, at least
  // snapshot_slice_rows and twice the commit's wallets each (written all at once, 4,096 rows
  // stalled the writer for milliseconds). The commit that writes the last row moves the snapshot
  // to where it began; until then snapshot_under_way names that position.
  const bool begins = impl.flush_ids.empty() &&
                      (position - impl.snapshot_position >= impl.options.snapshot_events_max ||
                       impl.changed.size() + newly_changed > impl.options.snapshot_wallets_max);
  std::vector<std::string> begun_ids;
  if (begins) {
    begun_ids.reserve(impl.changed.size() + batch.wallets.size());
    for (const auto& [id, state] : impl.changed) begun_ids.push_back(id);
    for (const WalletWrite& write : batch.wallets) {
      if (!impl.changed.contains(write.state.id)) begun_ids.push_back(write.state.id);
    }
    std::sort(begun_ids.begin(), begun_ids.end());
  }
  const std::vector<std::string>& flush_ids = begins ? begun_ids : impl.flush_ids;
  const bool flushing = begins || !flush_ids.empty();
  const std::size_t flush_from = begins ? 0 : impl.flush_versions.size();
  std::size_t flush_to = flush_from;
  std::vector<std::int64_t> flush_versions;
  if (flushing) {
    flush_to = std::min(flush_ids.size(), flush_from + std::max(impl.options.snapshot_slice_rows,
                                                                2 * batch.wallets.size()));
    // Each row holds the state at the snapshot's position: in the commit that begins it, this
    // batch's state or the one in memory; after it, the one frozen when its wallet changed
    // again, else the one in memory.
    std::unordered_map<std::string_view, const WalletState*> batch_states;
    if (begins) {
      for (const WalletWrite& write : batch.wallets)
        batch_states.emplace(write.state.id, &write.state);
    }
    for (std::size_t i = flush_from; i < flush_to; ++i) {
      const WalletState* wallet = nullptr;
      if (const auto in_batch = batch_states.find(flush_ids[i]); in_batch != batch_states.end()) {
        wallet = in_batch->second;
      } else if (const auto kept = impl.frozen.find(flush_ids[i]); kept != impl.frozen.end()) {
        wallet = &kept->second;
      } else {
        // Only the end of a snapshot takes a wallet out of `changed`.
        const auto in_memory = impl.changed.find(flush_ids[i]);
        WALLEX_CHECK(in_memory != impl.changed.end());
        wallet = &in_memory->second;
      }
      if (auto st = impl.write_row(*wallet); !st) return rollback(st.error());
      flush_versions.push_back(wallet->version);
    }
    // (A snapshot that a crash cut short is not resumed: the next one takes its place, and its
    // rows, as of an earlier position, are passed over as well until they are written again.)
    Status<StoreError> marked = Ok{};
    if (flush_to == flush_ids.size()) {
      marked = impl.move_snapshot(begins ? position : impl.flush_position);
      if (marked) marked = impl.run(impl.end_snapshot, "ending a snapshot");
    } else if (begins) {
      impl.begin_snapshot.bind(1, position);
      marked = impl.run(impl.begin_snapshot, "beginning a snapshot");
    }
    if (!marked) return rollback(marked.error());
  }
  if (auto s = impl.idempotency.merge_step(); !s) return rollback(s.error());
  if (auto s = impl.run(impl.commit, "commit"); !s) return rollback(s.error());
  impl.idempotency.committed();
  // Committed, not yet durable: the log's head moves on (the next batch continues it); the
  // batch is acknowledged only after a sync() that began after this returned.
  impl.last_position = position;
  if (begins) {
    impl.flush_ids = std::move(begun_ids);
    impl.flush_versions.clear();
    impl.flush_position = position;
  }
  const bool flushed = flushing && flush_to == impl.flush_ids.size();
  if (flushing) {
    impl.flush_versions.insert(impl.flush_versions.end(), flush_versions.begin(),
                               flush_versions.end());
    if (!flushed && !begins) {
      // A wallet of the snapshot whose row is still to come, changed by this batch: its row
      // must hold the state before the batch (its state at the snapshot's position).
      for (const WalletWrite& write : batch.wallets) {
        const auto at =
            std::lower_bound(impl.flush_ids.begin(), impl.flush_ids.end(), write.state.id);
        if (at == impl.flush_ids.end() || *at != write.state.id) continue;
        if (static_cast<std::size_t>(at - impl.flush_ids.begin()) < impl.flush_versions.size())
          continue;
        if (impl.frozen.contains(write.state.id)) continue;
        const auto before = impl.changed.find(write.state.id);
        WALLEX_CHECK(before != impl.changed.end());
        impl.frozen.emplace(write.state.id, before->second);
      }
    }
  }
  for (const WalletWrite& write : batch.wallets)
    impl.changed.insert_or_assign(write.state.id, write.state);
  if (flushed) {
    // A wallet whose row holds its state now needs no place in memory any more.
    for (std::size_t i = 0; i < impl.flush_ids.size(); ++i) {
      const auto it = impl.changed.find(impl.flush_ids[i]);
      if (it != impl.changed.end() && it->second.version == impl.flush_versions[i]) {
        impl.changed.erase(it);
      }
    }
    impl.snapshot_position = impl.flush_position;
    impl.flush_ids.clear();
    impl.flush_versions.clear();
    impl.frozen.clear();
  }
  result.last_position = position;
  return result;
}

Result<std::int64_t, StoreError> SqliteStore::purge_idempotency(TimestampMs created_before_ms,
                                                                std::size_t limit) {
  Impl& impl = *impl_;
  if (auto refused = impl.refuse_if_failed(); !refused) return fail(refused.error());
  if (auto s = impl.run(impl.begin, "begin"); !s) return fail(impl.latch(s.error()));
  auto purged = impl.idempotency.purge(created_before_ms, limit);
  if (purged) {
    if (auto s = impl.run(impl.commit, "commit"); !s) purged = fail(s.error());
  }
  if (!purged) {
    (void)impl.run(impl.rollback, "rollback");
    impl.idempotency.rolled_back();
    return fail(impl.latch(purged.error()));
  }
  impl.idempotency.committed();
  return purged;
}

Result<std::vector<StoredEvent>, StoreError> SqliteStore::read_events(std::int64_t after_position,
                                                                      std::size_t limit) {
  Statement& s = impl_->read_events;
  ResetOnExit reset(s);
  s.bind(1, after_position);
  s.bind(2, static_cast<std::int64_t>(limit));
  return impl_->collect_events(s);
}

Result<std::int64_t, StoreError> SqliteStore::last_position() {
  Statement& s = impl_->max_position;
  ResetOnExit reset(s);
  const int rc = s.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(impl_->db, rc, "reading the log head"));
  return s.int64(0);
}

}  // namespace wallex
