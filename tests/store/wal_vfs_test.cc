#include "store/sqlite/wal_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "store/sqlite/sqlite_error.h"

namespace wallex::testing {
namespace {

// The write calls of SQLite's unix VFS, counted (and failed on demand) through its table of
// system calls, which the VFS under test passes on.
struct WriteCalls {
  int calls = 0;
  std::int64_t bytes = 0;
  bool fail = false;  // with ENOSPC, writing nothing
  int zeros_errno = 0;  // fail writes of 4 KiB or more of zeros only (a preallocating WAL's)
};
WriteCalls writes;

using Pwrite = ssize_t (*)(int, const void*, size_t, off_t);
using Write = ssize_t (*)(int, const void*, size_t);
Pwrite real_pwrite = nullptr;
Pwrite real_pwrite64 = nullptr;
Write real_write = nullptr;

ssize_t count(ssize_t written) {
  ++writes.calls;
  if (written > 0) writes.bytes += written;
  return written;
}
// The errno a write fails with, or 0.
int failure(const void* data, size_t size) {
  if (writes.fail) return ENOSPC;
  if (writes.zeros_errno == 0 || size < 4096) return 0;
  const auto* bytes = static_cast<const unsigned char*>(data);
  const bool zeros = std::all_of(bytes, bytes + size, [](unsigned char b) { return b == 0; });
  return zeros ? writes.zeros_errno : 0;
}
ssize_t fail_with(int error) {
  errno = error;
  return count(-1);
}
ssize_t counted_pwrite(int fd, const void* data, size_t size, off_t offset) {
  if (const int error = failure(data, size)) return fail_with(error);
  return count(real_pwrite(fd, data, size, offset));
}
ssize_t counted_pwrite64(int fd, const void* data, size_t size, off_t offset) {
  if (const int error = failure(data, size)) return fail_with(error);
  return count(real_pwrite64(fd, data, size, offset));
}
ssize_t counted_write(int fd, const void* data, size_t size) {
  if (const int error = failure(data, size)) return fail_with(error);
  return count(real_write(fd, data, size));
}

template <typename Function>
void replace_call(sqlite3_vfs* vfs, const char* name, Function& real, Function counted) {
  sqlite3_syscall_ptr current = vfs->xGetSystemCall(vfs, name);
  if (current == nullptr) return;  // not a call this build of SQLite makes
  real = reinterpret_cast<Function>(current);
  ASSERT_EQ(vfs->xSetSystemCall(vfs, name, reinterpret_cast<sqlite3_syscall_ptr>(counted)),
            SQLITE_OK);
}

// The frames in the WAL after a connection's last commit, from its WAL hook (which also keeps
// SQLite's automatic checkpoints off that connection: a checkpoint would copy the frames into the
// database file, and the checks below must read them from the WAL).
int count_frames(void* frames, sqlite3*, const char*, int count) {
  *static_cast<int*>(frames) = count;
  return SQLITE_OK;
}

class WalVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(install_wal_vfs());
    vfs_ = wal_vfs();
    ASSERT_NE(vfs_, nullptr);
    ASSERT_EQ(sqlite3_vfs_find(nullptr), vfs_) << "the default VFS";
    replace_call(vfs_, "pwrite", real_pwrite, &counted_pwrite);
    replace_call(vfs_, "pwrite64", real_pwrite64, &counted_pwrite64);
    replace_call(vfs_, "write", real_write, &counted_write);
    writes = WriteCalls{};
    dir_ = std::filesystem::temp_directory_path() /
           ("wallex-wal-vfs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "test.db").string();
    writer_ = open();
    exec(writer_,
         "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;"
         "CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);");
    reader_ = open();
  }

  void TearDown() override {
    sqlite3_close(reader_);
    sqlite3_close(writer_);
    vfs_->xSetSystemCall(vfs_, nullptr, nullptr);  // every call back to the real one
    set_sync_file_range_for_tests(nullptr);
    std::filesystem::remove_all(dir_);
  }

  sqlite3* open() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              "wallex-wal"),
              SQLITE_OK);
    return db;
  }

  static void exec(sqlite3* db, const std::string& sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (message != nullptr ? message : "");
    sqlite3_free(message);
  }

  static std::string text(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sql;
    std::string value = "(no row)";
    if (sqlite3_step(statement) == SQLITE_ROW) {
      const auto* column = sqlite3_column_text(statement, 0);
      value = column != nullptr ? reinterpret_cast<const char*>(column) : "(null)";
    }
    sqlite3_finalize(statement);
    return value;
  }

  // Rows [first, last] with a payload that depends on the id (and `variant`) only.
  static std::string insert(int first, int last, int size, int variant = 0) {
    const std::string ids = "WITH RECURSIVE n(i) AS (SELECT " + std::to_string(first) +
                            " UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(last) +
                            ")";
    const std::string payload =
        "printf('%0" + std::to_string(size) + "d', i * " + std::to_string(variant + 1) + ")";
    return ids + " INSERT INTO t (id, payload) SELECT i, " + payload + " FROM n;";
  }

  // A digest of the table as another connection sees it.
  std::string digest() { return text(reader_, kDigest); }

  // The digest and integrity of a copy of the database and its WAL as they are on disk now,
  // opened through the plain unix VFS: what a process killed at this moment would leave. SQLite
  // rebuilds the copy's WAL index from the WAL file, checking every frame's checksum, and keeps
  // the transactions whose frames are all there.
  std::string on_disk_digest() {
    const std::filesystem::path copy = dir_ / "copy";
    std::filesystem::remove_all(copy);
    std::filesystem::create_directories(copy);
    std::filesystem::copy_file(path_, copy / "test.db");
    std::filesystem::copy_file(wal_path(), copy / "test.db-wal");
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((copy / "test.db").c_str(), &db, SQLITE_OPEN_READWRITE, "unix"),
              SQLITE_OK);
    const std::string digest = text(db, kDigest) + " " + text(db, "PRAGMA integrity_check");
    close_without_checkpoint(db);
    sqlite3_close(db);
    return digest;
  }

  std::string wal_path() const { return path_ + "-wal"; }

  // A connection whose WAL preallocates, as the store's does; `frames` follows its commits. With
  // first_rows, it commits rows 1..first_rows first (the WAL's header and its first zeros).
  sqlite3* open_preallocating(int& frames, int first_rows = 0) {
    sqlite3* db = open();
    sqlite3_wal_hook(db, count_frames, &frames);
    EXPECT_EQ(sqlite3_file_control(db, "main", kFileControlWalPreallocate, nullptr), SQLITE_OK);
    if (first_rows > 0) exec(db, "BEGIN; " + insert(1, first_rows, 3000) + " COMMIT;");
    return db;
  }

  // Both connections closed without a checkpoint and opened again (the WAL is recovered from
  // the file), then the table checked through them.
  void expect_after_reopen(const std::string& expected) {
    close_without_checkpoint(reader_);
    close_without_checkpoint(writer_);
    EXPECT_EQ(sqlite3_close(reader_), SQLITE_OK);
    EXPECT_EQ(sqlite3_close(writer_), SQLITE_OK);
    writer_ = open();
    reader_ = open();
    EXPECT_EQ(digest(), expected);
    EXPECT_EQ(text(reader_, "PRAGMA integrity_check"), "ok");
  }

  static constexpr const char* kDigest =
      "SELECT count(*) || ' ' || coalesce(sum(id), 0) || ' ' || "
      "coalesce(sum(length(payload)), 0) || ' ' || "
      "coalesce(sum(CAST(substr(payload, -6) AS INTEGER)), 0) FROM t";

  sqlite3_vfs* vfs_ = nullptr;
  std::filesystem::path dir_;
  std::string path_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
};

// What the VFS is for: SQLite writes every frame as two calls (header, page); through the VFS a
// commit's frames go out in pieces of 64 KiB.
TEST_F(WalVfsTest, ACommitsFramesGoToTheFileInAFewLargeWrites) {
  const auto wal_before = std::filesystem::file_size(wal_path());
  writes = WriteCalls{};
  exec(writer_, "BEGIN; " + insert(1, 150, 3000) + " COMMIT;");
  const auto wal_grown =
      static_cast<std::int64_t>(std::filesystem::file_size(wal_path()) - wal_before);
  const std::int64_t frames = wal_grown / (24 + 4096);
  EXPECT_GE(frames, 150);
  EXPECT_EQ(writes.bytes, wal_grown);
  EXPECT_LE(writes.calls, wal_grown / (64 * 1024) + 2) << frames << " frames";
  EXPECT_EQ(digest(), "150 11325 450000 11325");
}

// A transaction larger than the page cache spills frames before its commit, writes some pages
// again and exceeds the buffer; one is rolled back, the next committed. Another connection sees
// exactly the committed one, and so does a connection that recovers the database from the WAL
// file alone (which checks every frame's checksum).
TEST_F(WalVfsTest, SpilledRewrittenAndRolledBackFramesLeaveExactlyTheCommittedRows) {
  exec(writer_, "PRAGMA cache_size = 16");
  exec(writer_, "BEGIN; " + insert(1, 2000, 1000) +
                    " UPDATE t SET payload = zeroblob(10) WHERE id % 3 = 0; ROLLBACK;");
  EXPECT_EQ(digest(), "0 0 0 0");
  exec(writer_, "BEGIN; " + insert(1, 2000, 1000) + " DELETE FROM t WHERE id > 1500; " +
                    insert(1501, 2000, 1000, 1) + " COMMIT;");
  // 1..1500 end in the id, 1501..2000 in twice the id.
  const std::string expected = "2000 2001000 2000000 2876250";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(text(reader_, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(on_disk_digest(), expected + " ok");
  EXPECT_GT(std::filesystem::file_size(wal_path()), kPendingBytesMax);
  expect_after_reopen(expected);
}

// After a checkpoint that empties the WAL, the next commit writes the WAL's header again at
// offset 0, buffered with its frames.
TEST_F(WalVfsTest, TheWalStartsOverAfterACheckpoint) {
  exec(writer_, "BEGIN; " + insert(1, 100, 500) + " COMMIT;");
  EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
  EXPECT_EQ(std::filesystem::file_size(wal_path()), 0u);
  exec(writer_, "BEGIN; " + insert(101, 200, 500) + " COMMIT;");
  EXPECT_GT(std::filesystem::file_size(wal_path()), 0u);
  EXPECT_EQ(digest(), "200 20100 100000 20100");
  EXPECT_EQ(text(reader_, "PRAGMA integrity_check"), "ok");
}

// A write that fails (a full disk) fails the commit that flushed it; the database stays as it
// was and the next commit, with space back, succeeds.
TEST_F(WalVfsTest, AFailedWriteFailsTheCommitAndLeavesTheDatabaseAsItWas) {
  exec(writer_, "BEGIN; " + insert(1, 10, 3000) + " COMMIT;");
  exec(writer_, "BEGIN; " + insert(11, 60, 3000));
  writes.fail = true;
  const int rc = sqlite3_exec(writer_, "COMMIT", nullptr, nullptr, nullptr);
  writes.fail = false;
  EXPECT_EQ(rc, SQLITE_FULL) << sqlite3_errmsg(writer_);
  if (sqlite3_get_autocommit(writer_) == 0) exec(writer_, "ROLLBACK");
  EXPECT_EQ(digest(), "10 55 30000 55");
  exec(writer_, "BEGIN; " + insert(11, 20, 3000) + " COMMIT;");
  EXPECT_EQ(digest(), "20 210 60000 210");
  EXPECT_EQ(text(reader_, "PRAGMA integrity_check"), "ok");
}

// A commit is in the file when COMMIT returns, wherever its commit frame falls against the end
// of the buffer, which holds 254 frames and a half of 4 KiB pages: commits of 245 to 265 rows of
// one page each into an empty table, each into a WAL that starts over, one of them exactly 255
// frames long (its commit frame's header fits, its page does not).
TEST_F(WalVfsTest, EveryCommitIsInTheFileWhenCommitReturns) {
  std::set<std::int64_t> commit_frames;
  for (int rows = 245; rows <= 265; ++rows) {
    exec(writer_, "DROP TABLE t; CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);");
    EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
    exec(writer_, "BEGIN; " + insert(1, rows, 3000) + " COMMIT;");
    const auto frames =
        static_cast<std::int64_t>(std::filesystem::file_size(wal_path()) - 32) / (24 + 4096);
    commit_frames.insert(frames);
    EXPECT_EQ(on_disk_digest(), digest() + " ok") << rows << " rows, " << frames << " frames";
  }
  EXPECT_EQ(commit_frames.count(255), 1u) << "no commit of exactly 255 frames";
}

// Transactions that spilled frames and were rolled back, each followed by a small commit whose
// frames land where the spilled ones were: the commit is in the file when COMMIT returns.
TEST_F(WalVfsTest, ACommitOverFramesOfARolledBackTransactionIsInTheFile) {
  exec(writer_,
       "CREATE TABLE u (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); "
       "INSERT INTO u VALUES (1, 0); PRAGMA cache_size = 16;");
  int next = 1;
  for (int spilled = 100; spilled <= 200; spilled += 20) {
    // A small commit to another table in an otherwise empty WAL, then the spill: rolling it back
    // and committing to t read only pages whose last committed copies are in the database file,
    // so nothing calls the WAL file between the spill and the commit, which appends where the
    // spilled frames were.
    EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
    exec(writer_, "UPDATE u SET v = v + 1");
    exec(writer_, "BEGIN; " + insert(100'000, 100'000 + spilled, 1000) + " ROLLBACK;");
    exec(writer_, "BEGIN; " + insert(next, next, 100) + " COMMIT;");
    ++next;
    EXPECT_EQ(on_disk_digest(), digest() + " ok") << spilled << " rows rolled back";
  }
  EXPECT_EQ(digest(), "6 21 600 21");
}

// A transaction that changes pages it already spilled makes SQLite overwrite those frames and
// then rewrite the checksums of every frame after them, the commit frame's header last.
TEST_F(WalVfsTest, ACommitWhoseChecksumsWereRewrittenIsInTheFile) {
  exec(writer_, "PRAGMA cache_size = 16");
  exec(writer_, "BEGIN; " + insert(1, 600, 1000) +
                    " UPDATE t SET payload = printf('%01000d', id * 2) WHERE id <= 20; COMMIT;");
  // 1..20 end in twice the id, 21..600 in the id.
  const std::string expected = "600 180300 600000 180510";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(on_disk_digest(), expected + " ok");
}

// Frames a transaction spilled are written when SQLite reads the WAL back; when that write
// fails, the whole transaction is undone (an I/O error), not just the statement that read.
TEST_F(WalVfsTest, AFailedWriteBeforeAReadUndoesTheWholeTransaction) {
  exec(writer_, "PRAGMA cache_size = 16");
  exec(writer_, "BEGIN; " + insert(1, 10, 100) + " COMMIT;");
  exec(writer_, "BEGIN; " + insert(11, 600, 1000));
  const int calls_before = writes.calls;
  writes.fail = true;
  const int rc =
      sqlite3_exec(writer_, "SELECT sum(length(payload)) FROM t", nullptr, nullptr, nullptr);
  writes.fail = false;
  EXPECT_GT(writes.calls, calls_before) << "the read wrote nothing first";
  EXPECT_EQ(rc & 0xff, SQLITE_IOERR) << sqlite3_errmsg(writer_);
  EXPECT_NE(sqlite3_get_autocommit(writer_), 0) << "the transaction is still open";
  if (sqlite3_get_autocommit(writer_) == 0) exec(writer_, "ROLLBACK");
  EXPECT_EQ(digest(), "10 55 1000 55");
  exec(writer_, "BEGIN; " + insert(11, 20, 100) + " COMMIT;");
  EXPECT_EQ(digest(), "20 210 2000 210");
  EXPECT_EQ(on_disk_digest(), "20 210 2000 210 ok");
}

// Without "powersafe overwrite" SQLite pads a synchronous commit to a sector boundary and may
// split the commit frame's page around a sync: such a WAL is not buffered, and its commits are
// in the file and readable.
TEST_F(WalVfsTest, CommitsPaddedToSectorsAreInTheFile) {
  ASSERT_EQ(sqlite3_close(reader_), SQLITE_OK);
  ASSERT_EQ(sqlite3_close(writer_), SQLITE_OK);
  const std::string uri = "file:" + path_ + "?psow=0";
  for (sqlite3** db : {&writer_, &reader_}) {
    *db = nullptr;
    ASSERT_EQ(
        sqlite3_open_v2(uri.c_str(), db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, "wallex-wal"),
        SQLITE_OK);
  }
  exec(writer_, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;");
  int next = 1;
  for (int rows = 1; rows <= 40; rows += 13) {
    exec(writer_, "BEGIN; " + insert(next, next + rows - 1, 500) + " COMMIT;");
    next += rows;
    EXPECT_EQ(text(reader_, "SELECT count(*) FROM t"), std::to_string(next - 1))
        << sqlite3_errmsg(reader_);
    EXPECT_EQ(on_disk_digest(), digest() + " ok") << rows << " rows";
  }
}

// Frames a connection spilled and then rolled back are dead. Another connection then commits
// frames at the same place in the WAL; when the first one next touches the WAL, it must not
// write its dead frames over them.
TEST_F(WalVfsTest, RolledBackFramesNeverOverwriteAnotherConnectionsCommit) {
  exec(writer_,
       "CREATE TABLE u (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); "
       "INSERT INTO u VALUES (1, 0); PRAGMA cache_size = 16;");
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
    exec(writer_, "UPDATE u SET v = v + 1");
    exec(writer_, "BEGIN; " + insert(100'000, 100'150, 1000) + " ROLLBACK;");
    // The other connection writes where the dead frames were.
    exec(reader_, "BEGIN; " + insert(round * 40 + 1, round * 40 + 40, 1000) + " COMMIT;");
    const std::string expected = digest();
    EXPECT_EQ(text(writer_, kDigest), expected);  // the first connection reads the WAL again
    EXPECT_EQ(digest(), expected);
    EXPECT_EQ(on_disk_digest(), expected + " ok") << "round " << round;
  }
}

// A full disk when a commit starts the WAL over (its header, then a sync, then the frames) is
// reported as a full disk, as without the VFS: the service answers that with "store full"
// instead of stopping.
TEST_F(WalVfsTest, AFullDiskWhenTheWalStartsOverIsAFullDisk) {
  exec(writer_, "BEGIN; " + insert(1, 10, 100) + " COMMIT;");
  EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
  writes.fail = true;
  const int rc = sqlite3_exec(writer_, ("BEGIN; " + insert(11, 20, 100) + " COMMIT;").c_str(),
                              nullptr, nullptr, nullptr);
  writes.fail = false;
  EXPECT_EQ(rc, SQLITE_FULL) << sqlite3_errmsg(writer_);
  if (sqlite3_get_autocommit(writer_) == 0) exec(writer_, "ROLLBACK");
  exec(writer_, "BEGIN; " + insert(11, 20, 100) + " COMMIT;");
  EXPECT_EQ(digest(), "20 210 2000 210");
  EXPECT_EQ(on_disk_digest(), "20 210 2000 210 ok");
}

// With `PRAGMA locking_mode = EXCLUSIVE` SQLite takes no shared-memory locks, so the VFS would
// not see a write transaction end: nothing is buffered while the connection holds its database
// file's exclusive lock. Frames it spilled and rolled back there are in the file at once, and
// when it goes back to normal locking, another connection's commit at the same place is safe.
TEST_F(WalVfsTest, InExclusiveLockingModeRolledBackFramesNeverOverwriteAnotherConnectionsCommit) {
  exec(writer_,
       "CREATE TABLE u (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); "
       "INSERT INTO u VALUES (1, 0); PRAGMA cache_size = 16;");
  // As in RolledBackFramesNeverOverwriteAnotherConnectionsCommit: nothing the first connection
  // does next reads the WAL file. The other connection is closed while it holds the lock.
  EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(TRUNCATE)"), "0");
  ASSERT_EQ(sqlite3_close(reader_), SQLITE_OK);
  reader_ = nullptr;
  exec(writer_, "PRAGMA locking_mode = EXCLUSIVE; UPDATE u SET v = v + 1;");
  exec(writer_, "BEGIN; " + insert(100'000, 100'150, 1000) + " ROLLBACK;");
  // An empty write transaction gives the exclusive lock up without reading the WAL.
  exec(writer_, "PRAGMA locking_mode = NORMAL; BEGIN IMMEDIATE; ROLLBACK;");
  reader_ = open();
  // The other connection writes where the dead frames were.
  exec(reader_, "BEGIN; " + insert(1, 40, 1000) + " COMMIT;");
  const std::string expected = "40 820 40000 820";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(text(writer_, kDigest), expected);  // the first connection reads the WAL again
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(on_disk_digest(), expected + " ok");
}

// A failed flush drops the pending frames. Not every caller rolls back on the error: an
// incremental blob read leaves the transaction open until the blob is closed, and a COMMIT before
// that must fail rather than commit without those frames (it did, leaving a corrupt database).
TEST_F(WalVfsTest, AfterFramesWereLostTheTransactionCannotCommit) {
  exec(writer_,
       "PRAGMA cache_size = 16; CREATE TABLE u (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);");
  exec(writer_, "BEGIN; " + insert(1, 10, 100) + " COMMIT;");
  // A large blob written, then pushed out of the page cache by enough rows of another table
  // that their frames wait in the buffer; reading its end reads the WAL.
  exec(writer_, "BEGIN; INSERT INTO t VALUES (1000, zeroblob(40000));");
  sqlite3_blob* blob = nullptr;
  ASSERT_EQ(sqlite3_blob_open(writer_, "main", "t", "payload", 1000, 0, &blob), SQLITE_OK)
      << sqlite3_errmsg(writer_);
  exec(writer_,
       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150) "
       "INSERT INTO u SELECT i, zeroblob(1000) FROM n;");
  char bytes[100];
  const int calls_before = writes.calls;
  writes.fail = true;
  const int read_rc = sqlite3_blob_read(blob, bytes, sizeof bytes, 30'000);
  writes.fail = false;
  EXPECT_GT(writes.calls, calls_before) << "the read wrote nothing first";
  EXPECT_NE(read_rc, SQLITE_OK) << "the flush before the read did not fail";
  const int commit_rc = sqlite3_exec(writer_, "COMMIT", nullptr, nullptr, nullptr);
  EXPECT_NE(commit_rc, SQLITE_OK) << "a transaction whose frames were lost committed";
  sqlite3_blob_close(blob);
  if (sqlite3_get_autocommit(writer_) == 0) exec(writer_, "ROLLBACK");
  EXPECT_EQ(digest(), "10 55 1000 55");
  EXPECT_EQ(on_disk_digest(), "10 55 1000 55 ok");
  exec(writer_, "BEGIN; " + insert(11, 20, 100) + " COMMIT;");
  EXPECT_EQ(digest(), "20 210 2000 210");
  EXPECT_EQ(on_disk_digest(), "20 210 2000 210 ok");
}

// After another connection started the WAL over, a connection's next commit is buffered again
// (one large write, not two calls per frame), though it lands below what it wrote before.
TEST_F(WalVfsTest, ACommitAfterAnotherConnectionStartedTheWalOverIsBuffered) {
  exec(writer_, "BEGIN; " + insert(1, 100, 3000) + " COMMIT;");
  EXPECT_EQ(text(reader_, "PRAGMA wal_checkpoint(RESTART)"), "0");
  exec(reader_, "BEGIN; " + insert(101, 102, 100) + " COMMIT;");  // writes the header
  writes = WriteCalls{};
  exec(writer_, "BEGIN; " + insert(103, 130, 3000) + " COMMIT;");
  EXPECT_GE(writes.bytes, 28 * 4096);
  EXPECT_LE(writes.calls, 4) << writes.bytes << " bytes";
  const std::string expected = "130 8515 384200 8515";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(on_disk_digest(), expected + " ok");
}

// Writeback in steps: the kernel is asked to start writing a file to the device every 256 KiB
// written to it, for the WAL as a commit appends and for the database file as a checkpoint
// copies into it.
TEST_F(WalVfsTest, WritebackStartsInStepsAsTheWalAndTheDatabaseAreWritten) {
  const std::uint64_t before_commit = writeback_steps_started();
  writes = WriteCalls{};
  exec(writer_, "BEGIN; " + insert(1, 600, 3000) + " COMMIT;");
  const std::int64_t wal_bytes = writes.bytes;
  ASSERT_GE(wal_bytes, 600 * 4096);
  const std::uint64_t after_commit = writeback_steps_started();
  EXPECT_GE(after_commit - before_commit,
            static_cast<std::uint64_t>(wal_bytes) / kWritebackStepBytes - 1);

  writes = WriteCalls{};
  EXPECT_EQ(text(writer_, "PRAGMA wal_checkpoint(PASSIVE)"), "0");
  const std::int64_t database_bytes = writes.bytes;
  ASSERT_GE(database_bytes, 600 * 3000);
  EXPECT_GE(writeback_steps_started() - after_commit,
            static_cast<std::uint64_t>(database_bytes) / kWritebackStepBytes - 1);
  EXPECT_EQ(digest(), "600 180300 1800000 180300");
}

// A connection whose WAL is fsync'd after every commit anyway turns the steps off for its WAL;
// a checkpoint still writes the database file in steps.
TEST_F(WalVfsTest, AConnectionCanTurnTheStepsOffForItsWal) {
  ASSERT_EQ(sqlite3_file_control(writer_, "main", kFileControlWalWritebackOff, nullptr), SQLITE_OK);
  const std::uint64_t before_commit = writeback_steps_started();
  exec(writer_, "BEGIN; " + insert(1, 600, 3000) + " COMMIT;");
  EXPECT_EQ(writeback_steps_started(), before_commit);
  EXPECT_EQ(text(writer_, "PRAGMA wal_checkpoint(PASSIVE)"), "0");
  EXPECT_GE(writeback_steps_started() - before_commit, 6U);
  EXPECT_EQ(digest(), "600 180300 1800000 180300");
}

int fail_with_eio(int, long, long, unsigned int) {
  errno = EIO;
  return -1;
}

// A writeback that cannot even be started is an I/O error of the file: the next sync through
// the same file object fails (here the checkpoint's sync of the WAL), and the steps end for it.
TEST_F(WalVfsTest, AFailedWritebackStartFailsTheNextSync) {
  set_sync_file_range_for_tests(&fail_with_eio);
  const std::uint64_t before = writeback_steps_started();
  exec(writer_, "BEGIN; " + insert(1, 600, 3000) + " COMMIT;");  // not synced: NORMAL
  set_sync_file_range_for_tests(nullptr);
  EXPECT_EQ(writeback_steps_started(), before);
  char* message = nullptr;
  const int rc =
      sqlite3_exec(writer_, "PRAGMA wal_checkpoint(PASSIVE)", nullptr, nullptr, &message);
  EXPECT_EQ(rc & 0xff, SQLITE_IOERR) << (message != nullptr ? message : "");
  EXPECT_EQ(sqlite3_extended_errcode(writer_), SQLITE_IOERR_FSYNC);
  sqlite3_free(message);
  EXPECT_EQ(digest(), "600 180300 1800000 180300") << "the commit itself stands";
}

// As the store does it: right after opening, before the connection has opened its WAL.
TEST_F(WalVfsTest, StepsTurnedOffBeforeTheWalIsOpenStayOff) {
  sqlite3* store = open();
  ASSERT_EQ(sqlite3_file_control(store, "main", kFileControlWalWritebackOff, nullptr), SQLITE_OK);
  const std::uint64_t before_commit = writeback_steps_started();
  exec(store, "BEGIN; " + insert(1, 600, 3000) + " COMMIT;");
  EXPECT_EQ(writeback_steps_started(), before_commit);
  int descriptors[2] = {-2, -2};
  ASSERT_EQ(sqlite3_file_control(store, "main", kFileControlWritebackDescriptors, descriptors),
            SQLITE_OK);
  EXPECT_GE(descriptors[0], 0) << "the database file keeps its steps";
  EXPECT_EQ(descriptors[1], -1);
  EXPECT_EQ(digest(), "600 180300 1800000 180300");
  sqlite3_close(store);
}

// The descriptors of a file, from /proc/self/fd.
int descriptors_of(const std::string& path) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path(), error) == path) ++count;
  }
  return count;
}

// The steps use SQLite's own descriptors, found in its file objects: the right files, and not
// one descriptor more (one of our own would have to be closed, dropping SQLite's POSIX locks).
TEST_F(WalVfsTest, TheStepsUseSqlitesOwnDescriptors) {
  exec(writer_, "BEGIN; " + insert(1, 10, 100) + " COMMIT;");
  EXPECT_EQ(digest(), "10 55 1000 55");  // both connections have opened the WAL
  int descriptors[2] = {-2, -2};
  ASSERT_EQ(sqlite3_file_control(writer_, "main", kFileControlWritebackDescriptors, descriptors),
            SQLITE_OK);
  struct stat by_fd {};
  struct stat by_name {};
  ASSERT_EQ(::fstat(descriptors[0], &by_fd), 0);
  ASSERT_EQ(::stat(path_.c_str(), &by_name), 0);
  EXPECT_EQ(by_fd.st_ino, by_name.st_ino);
  ASSERT_EQ(::fstat(descriptors[1], &by_fd), 0);
  ASSERT_EQ(::stat(wal_path().c_str(), &by_name), 0);
  EXPECT_EQ(by_fd.st_ino, by_name.st_ino);
  const std::string canonical = std::filesystem::canonical(path_).string();
  EXPECT_EQ(descriptors_of(canonical), 2) << "one for each of the two connections";
  EXPECT_EQ(descriptors_of(canonical + "-wal"), 2);
}

// The POSIX locks this process holds on the database file, from /proc/locks ("<n>: POSIX
// ADVISORY READ <pid> <major>:<minor>:<inode> <start> <end>").
std::multiset<std::string> posix_locks_on(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  const std::string inode = ":" + std::to_string(st.st_ino);
  const std::string pid = std::to_string(::getpid());
  std::multiset<std::string> locks;
  std::ifstream in("/proc/locks");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string number, kind, advisory, mode, owner, file, start, end;
    fields >> number >> kind >> advisory >> mode >> owner >> file >> start >> end;
    const bool same_inode = file.size() > inode.size() &&
                            file.compare(file.size() - inode.size(), inode.size(), inode) == 0;
    if (kind == "POSIX" && owner == pid && same_inode) locks.insert(mode + " " + start + " " + end);
  }
  return locks;
}

// Closing any descriptor of a file drops every POSIX lock the process holds on it: a connection
// that closes must not take the locks of the connections still open with it (another process
// would then see the file unused), whatever the VFS does with descriptors for its steps.
TEST_F(WalVfsTest, ClosingAConnectionLeavesTheLocksOfTheOthers) {
  exec(writer_, "BEGIN; " + insert(1, 10, 100) + " COMMIT;");
  EXPECT_EQ(digest(), "10 55 1000 55");  // both connections have read the file
  const auto held = posix_locks_on(path_);
  ASSERT_FALSE(held.empty()) << "an open WAL-mode connection holds a shared lock";
  sqlite3* third = open();
  EXPECT_EQ(text(third, "SELECT count(*) FROM t"), "10");
  sqlite3_close(third);
  EXPECT_EQ(posix_locks_on(path_), held);
  sqlite3_close(reader_);
  reader_ = nullptr;
  EXPECT_EQ(posix_locks_on(path_), held);
  exec(writer_, "BEGIN; " + insert(11, 20, 100) + " COMMIT;");
  EXPECT_EQ(text(writer_, "SELECT count(*) FROM t"), "20");
}

std::int64_t wal_size(const std::string& path) {
  return static_cast<std::int64_t>(std::filesystem::file_size(path));
}

constexpr auto kStep = static_cast<std::int64_t>(kWalPreallocateStepBytes);
constexpr std::int64_t frames_end(int frames) { return 32 + std::int64_t{frames} * (24 + 4096); }

// Preallocation: the WAL's size changes one step of zeros at a time, not with every commit, and
// a WAL with zeros beyond its frames recovers exactly its commits (SQLite stops at the first
// frame that is not one of the header's), as a kill would leave it and after a reopen. Nothing
// is checkpointed: the rows are in the WAL's frames only.
TEST_F(WalVfsTest, APreallocatingWalGrowsInStepsAndRecoversItsCommits) {
  int frames = 0;
  sqlite3* store = open_preallocating(frames);
  std::set<std::int64_t> sizes;
  for (int i = 0; i < 60; ++i) {
    exec(store, "BEGIN; " + insert(i * 4 + 1, i * 4 + 4, 3000) + " COMMIT;");
    const std::int64_t size = wal_size(wal_path());
    EXPECT_EQ(size % kStep, 0) << "commit " << i;
    EXPECT_GE(size - frames_end(frames), kStep) << "commit " << i;
    sizes.insert(size);
  }
  EXPECT_GE(frames, 240) << "every row is a page of its own";
  for (auto it = std::next(sizes.begin()); it != sizes.end(); ++it) {
    EXPECT_EQ(*it - *std::prev(it), kStep) << "the file grows one step at a time";
  }
  EXPECT_LE(static_cast<std::int64_t>(sizes.size()), frames_end(frames) / kStep + 1)
      << "the file grew with every commit";
  const std::string expected = "240 28920 720000 28920";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(on_disk_digest(), expected + " ok");
  close_without_checkpoint(store);
  EXPECT_EQ(sqlite3_close(store), SQLITE_OK);
  expect_after_reopen(expected);
}

// The zeros start at the file's end as it is when they are written: the frames another
// connection appended beyond the zeros this one wrote earlier are never overwritten.
TEST_F(WalVfsTest, ZerosNeverLandOnAnotherConnectionsFrames) {
  int frames = 0;
  sqlite3* store = open_preallocating(frames, /*first_rows=*/4);
  const std::int64_t prepared = wal_size(wal_path());
  exec(writer_, "BEGIN; " + insert(5, 300, 3000) + " COMMIT;");  // not preallocating
  const std::int64_t theirs = wal_size(wal_path());
  ASSERT_GT(theirs, prepared + kStep) << "the other connection's frames pass the zeros";
  exec(store, "BEGIN; " + insert(301, 304, 3000) + " COMMIT;");
  EXPECT_GT(frames_end(frames), theirs) << "appended after the other connection's frames";
  EXPECT_EQ(wal_size(wal_path()) % kStep, 0) << "zeros written after them";
  const std::string expected = "304 46360 912000 46360";
  EXPECT_EQ(digest(), expected);
  EXPECT_EQ(text(reader_, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(on_disk_digest(), expected + " ok");
  sqlite3_close(store);
}

// A write of zeros that fails with an I/O error is the failure of the write that needed it: the
// commit fails, the database stays as it was, and the next commit succeeds.
TEST_F(WalVfsTest, AnIoErrorWritingZerosFailsTheCommit) {
  int frames = 0;
  sqlite3* store = open_preallocating(frames, /*first_rows=*/4);
  const std::int64_t prepared = wal_size(wal_path());
  exec(store, "BEGIN; " + insert(5, 200, 3000));  // beyond the zeros written so far
  writes.zeros_errno = EIO;
  const int rc = sqlite3_exec(store, "COMMIT", nullptr, nullptr, nullptr);
  writes.zeros_errno = 0;
  EXPECT_EQ(rc & 0xff, SQLITE_IOERR) << sqlite3_errmsg(store);
  if (sqlite3_get_autocommit(store) == 0) exec(store, "ROLLBACK");
  EXPECT_EQ(digest(), "4 10 12000 10");
  exec(store, "BEGIN; " + insert(5, 200, 3000) + " COMMIT;");
  EXPECT_GT(wal_size(wal_path()), prepared);
  EXPECT_EQ(digest(), "200 20100 600000 20100");
  EXPECT_EQ(on_disk_digest(), "200 20100 600000 20100 ok");
  sqlite3_close(store);
}

// A full disk for the zeros leaves the commit to its own writes, which may still fit: the WAL
// grows as it would without preallocation.
TEST_F(WalVfsTest, AFullDiskForTheZerosLeavesTheCommitToItsOwnWrites) {
  int frames = 0;
  sqlite3* store = open_preallocating(frames, /*first_rows=*/4);
  writes.zeros_errno = ENOSPC;
  exec(store, "BEGIN; " + insert(5, 200, 3000) + " COMMIT;");
  exec(store, "BEGIN; " + insert(201, 204, 3000) + " COMMIT;");
  writes.zeros_errno = 0;
  EXPECT_EQ(wal_size(wal_path()), frames_end(frames)) << "no zeros beyond the frames";
  EXPECT_EQ(digest(), "204 20910 612000 20910");
  EXPECT_EQ(on_disk_digest(), "204 20910 612000 20910 ok");
  exec(store, "BEGIN; " + insert(205, 208, 3000) + " COMMIT;");  // space is back
  EXPECT_EQ(wal_size(wal_path()) % kStep, 0);
  EXPECT_EQ(digest(), "208 21736 624000 21736");
  sqlite3_close(store);
}

}  // namespace
}  // namespace wallex::testing
