#include "store/sqlite/wal_checkpointer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace wallex::testing {
namespace {

// A WAL-mode database in a temporary directory with one table of 4 KiB rows: every row committed
// adds a few frames, so the WAL's frame count follows the rows written.
class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wallex-ckpt-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/test.db";
    ASSERT_EQ(sqlite3_open(path_.c_str(), &writer_), SQLITE_OK);
    exec(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
        " CREATE TABLE rows (id INTEGER PRIMARY KEY, data BLOB NOT NULL)");
    // Everything so far into the database file: its size is the baseline.
    exec("PRAGMA wal_checkpoint(TRUNCATE)");
    baseline_bytes_ = std::filesystem::file_size(path_);
  }
  void TearDown() override {
    sqlite3_close(writer_);
    std::filesystem::remove_all(dir_);
  }

  void exec(const char* sql) {
    char* message = nullptr;
    ASSERT_EQ(sqlite3_exec(writer_, sql, nullptr, nullptr, &message), SQLITE_OK) << message;
  }
  // Commits one transaction per row.
  void write_rows(int rows) {
    for (int i = 0; i < rows; ++i) exec("INSERT INTO rows (data) VALUES (zeroblob(4096))");
  }
  std::uintmax_t database_bytes() const { return std::filesystem::file_size(path_); }
  // `holds` became true within the time limit (polled every 5 ms).
  template <typename Predicate>
  static bool within(std::chrono::milliseconds limit, Predicate holds) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (holds()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return holds();
  }
  // The database file grew past its baseline within the time limit.
  bool database_grows_within(std::chrono::milliseconds limit) const {
    return within(limit, [this] { return database_bytes() > baseline_bytes_; });
  }
  // The last commit wrote its frames at the start of the WAL (checked by a passive checkpoint,
  // which copies them).
  void expect_wal_started_over() {
    int wal_frames = -1, checkpointed = -1;
    ASSERT_EQ(sqlite3_wal_checkpoint_v2(writer_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames,
                                        &checkpointed),
              SQLITE_OK);
    EXPECT_GT(wal_frames, 0);
    EXPECT_LT(wal_frames, 10);
  }
  // A reader in a transaction on the WAL as it is now: the frames after it cannot be copied, and
  // the WAL cannot start over, until end_reader().
  sqlite3* begin_reader() const {
    sqlite3* reader = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM rows", nullptr, nullptr, nullptr),
              SQLITE_OK);
    return reader;
  }
  static void end_reader(sqlite3* reader) {
    EXPECT_EQ(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(reader);
  }
  // The thread is never woken (start and inline bounds out of reach): only settle() copies,
  // from 200 frames.
  WalCheckpointer::Options settle_options() const {
    WalCheckpointer::Options o = options(/*start=*/1'000'000, /*inline_frames=*/1'000'000);
    o.frames_to_settle = 200;
    return o;
  }
  WalCheckpointer::Options options(int start, int inline_frames) const {
    WalCheckpointer::Options o;
    o.path = path_;
    o.thread_name = "test-ckpt";
    o.synchronous = "NORMAL";
    o.frames_to_start = start;
    o.frames_to_checkpoint_inline = inline_frames;
    return o;
  }

  std::string dir_, path_;
  sqlite3* writer_ = nullptr;
  std::uintmax_t baseline_bytes_ = 0;
};

TEST_F(WalCheckpointerTest, ItsThreadCopiesTheWalIntoTheDatabaseOnceEnoughFramesAreWritten) {
  WalCheckpointer checkpointer(options(/*start=*/200, /*inline_frames=*/1'000'000));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(20);  // ~60 frames (a row takes two pages and a commit rewrites the leaf): below
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(database_bytes(), baseline_bytes_);
  write_rows(200);
  EXPECT_TRUE(database_grows_within(std::chrono::seconds(10)));
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, OnceWokenTheThreadWaitsForTheWalToGrowByTheRewakeFrames) {
  WalCheckpointer::Options o = options(/*start=*/100, /*inline_frames=*/1'000'000);
  o.frames_to_rewake = 400;
  WalCheckpointer checkpointer(std::move(o));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  const auto runs_reach = [&](std::uint64_t runs) {
    return within(std::chrono::seconds(10), [&] { return checkpointer.runs() >= runs; });
  };
  write_rows(40);  // ~120 frames: past the start, one wake-up
  // The WAL cannot start over (which would start the count again) while this reader is on it.
  sqlite3* reader = begin_reader();
  ASSERT_TRUE(runs_reach(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::uint64_t after_first = checkpointer.runs();
  write_rows(60);  // ~180 frames more: every commit is past the start, none wakes it
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(checkpointer.runs(), after_first);
  end_reader(reader);
  write_rows(200);  // ~600 more: woken again
  EXPECT_TRUE(runs_reach(after_first + 1));
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, ReplacesSqlitesAutomaticCheckpointsInsideCommits) {
  // SQLite's default would checkpoint inside the commit that passes 1,000 frames.
  WalCheckpointer checkpointer(options(/*start=*/1'000'000, /*inline_frames=*/1'000'000));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(1'500);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(database_bytes(), baseline_bytes_);
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, TheWriterCheckpointsItselfWhenTheWalGrowsFarBeyondTheThreshold) {
  // The thread is never woken (start threshold out of reach): only the inline bound copies.
  WalCheckpointer checkpointer(options(/*start=*/1'000'000, /*inline_frames=*/100));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(150);
  EXPECT_GT(database_bytes(), baseline_bytes_);  // at once, inside the commit that passed it
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, SettleLetsTheNextTransactionStartTheWalOverOnceItIsLong) {
  WalCheckpointer checkpointer(settle_options());
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(20);  // ~60 frames: below the threshold, settle() leaves the WAL alone
  checkpointer.settle(writer_);
  EXPECT_EQ(database_bytes(), baseline_bytes_);
  write_rows(100);  // well past it
  checkpointer.settle(writer_);
  EXPECT_GT(database_bytes(), baseline_bytes_);
  write_rows(1);
  // The commit after settle() wrote its frames at the start of the WAL.
  expect_wal_started_over();
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, SettleWithoutWaitingStillStartsTheWalOverWhenTheThreadIsIdle) {
  WalCheckpointer::Options o = settle_options();
  o.settle_waits = false;
  WalCheckpointer checkpointer(std::move(o));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(100);
  EXPECT_EQ(checkpointer.settle(writer_), SQLITE_OK);
  EXPECT_GT(database_bytes(), baseline_bytes_);
  write_rows(1);
  expect_wal_started_over();
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, AfterASettleThatCouldNotStartTheWalOverTheNextWaitsForGrowth) {
  WalCheckpointer::Options o = settle_options();
  o.frames_to_rewake = 100;
  o.settle_waits = false;
  WalCheckpointer checkpointer(std::move(o));
  ASSERT_TRUE(checkpointer.start().ok());
  checkpointer.attach(writer_);
  write_rows(100);
  // A reader on the WAL's frames as they are now: what comes after them cannot be copied.
  sqlite3* reader = begin_reader();
  write_rows(10);
  EXPECT_EQ(checkpointer.settle(writer_), SQLITE_OK);
  const std::uintmax_t after_settle = database_bytes();
  EXPECT_GT(after_settle, baseline_bytes_);
  end_reader(reader);
  write_rows(1);  // the WAL goes on: its last frames were not copied when this began
  EXPECT_EQ(checkpointer.settle(writer_), SQLITE_OK);
  EXPECT_EQ(database_bytes(), after_settle);  // a few frames more: not settled again
  write_rows(40);  // ~120 frames more
  EXPECT_EQ(checkpointer.settle(writer_), SQLITE_OK);
  EXPECT_GT(database_bytes(), after_settle);
  sqlite3_wal_hook(writer_, nullptr, nullptr);
}

TEST_F(WalCheckpointerTest, NothingIsCopiedOnceTheStoreHasFailed) {
  std::atomic<bool> failed{true};
  WalCheckpointer::Options o = options(/*start=*/10, /*inline_frames=*/1'000'000);
  o.failed = [&failed] { return failed.load(); };
  {
    WalCheckpointer checkpointer(std::move(o));
    ASSERT_TRUE(checkpointer.start().ok());
    checkpointer.attach(writer_);
    write_rows(100);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(database_bytes(), baseline_bytes_);
    sqlite3_wal_hook(writer_, nullptr, nullptr);
  }
  // Its connection closed without SQLite's checkpoint at close either.
  EXPECT_EQ(database_bytes(), baseline_bytes_);
}

}  // namespace
}  // namespace wallex::testing
