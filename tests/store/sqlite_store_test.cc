#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "store/event_codec.h"
#include "store/sqlite/idempotency_records.h"
#include "store_suite.h"

namespace wallex::testing {
namespace {

std::string make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "wallex-store-XXXXXX").string();
  const char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

class SqliteHarness final : public StoreHarness {
 public:
  explicit SqliteHarness(SqliteStore::OpenOptions options)
      : dir_(make_temp_dir()), options_(options) {}
  ~SqliteHarness() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<EventStore> open() override {
    auto store = SqliteStore::open(dir_, options_);
    EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
    return store ? std::move(store).value() : nullptr;
  }

 private:
  std::string dir_;
  SqliteStore::OpenOptions options_;
};

StoreFactory sqlite_factory(std::string name, std::int64_t snapshot_events_max,
                            std::size_t snapshot_wallets_max,
                            std::size_t idempotency_merge_records = 65'536,
                            std::size_t idempotency_merge_chunk = 64,
                            std::size_t snapshot_slice_rows = 64,
                            std::size_t idempotency_filter_chunk = 256) {
  SqliteStore::OpenOptions options;
  options.snapshot_events_max = snapshot_events_max;
  options.snapshot_wallets_max = snapshot_wallets_max;
  options.snapshot_slice_rows = snapshot_slice_rows;
  options.idempotency_merge_records = idempotency_merge_records;
  options.idempotency_merge_chunk = idempotency_merge_chunk;
  options.idempotency_filter_chunk = idempotency_filter_chunk;
  return StoreFactory{std::move(name),
                      [options] { return std::make_unique<SqliteHarness>(options); }};
}

// The whole suite five times: the default snapshot thresholds (never reached by its batches:
// every reopen replays the write model from the log), a snapshot with every commit, snapshots
// every few events or wallets (some state in the table, the rest replayed), the same written a
// row a commit (a snapshot under way at most reopens), and idempotency records merged into their
// index two at a time, one entry a commit, the filter of the index rebuilt after each reopen
// reading as few entries a commit as it may (idempotency_records.h).
INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreSuite,
    ::testing::Values(sqlite_factory("sqlite", 65'536, 4'096),
                      sqlite_factory("sqliteSnapshotEachCommit", 1, 0),
                      sqlite_factory("sqliteSmallSnapshots", 3, 2),
                      sqlite_factory("sqliteSnapshotsInSlices", 3, 2, 65'536, 64, 1),
                      sqlite_factory("sqliteSmallIndexMerges", 65'536, 4'096, 2, 1, 64, 1)),
    [](const auto& param_info) { return param_info.param.name; });

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string db_path() const { return dir_ + "/wallex.db"; }
  void sql(const char* statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, statement, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  // The first column of the first row of a query, as an integer.
  std::int64_t sql_int(const char* query) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, query, -1, &statement, nullptr), SQLITE_OK) << query;
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW) << query;
    const std::int64_t value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
  }
  std::unique_ptr<SqliteStore> open_store(std::int64_t snapshot_events_max = 65'536,
                                          std::size_t snapshot_wallets_max = 4'096,
                                          bool snapshot_at_close = true,
                                          std::size_t snapshot_slice_rows = 64) {
    SqliteStore::OpenOptions options;
    options.snapshot_events_max = snapshot_events_max;
    options.snapshot_wallets_max = snapshot_wallets_max;
    options.snapshot_at_close = snapshot_at_close;
    options.snapshot_slice_rows = snapshot_slice_rows;
    auto store = SqliteStore::open(dir_, options);
    EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
    return store ? std::move(store).value() : nullptr;
  }
  // A store whose idempotency records are merged into their index after `records` records, `chunk`
  // entries a commit, with the filter of the index's hashes at 2^bits_log2 bits, its rebuild
  // reading at least `filter_chunk` entries a commit.
  std::unique_ptr<SqliteStore> open_with_merges(std::size_t records, std::size_t chunk,
                                                std::size_t filter_chunk = 256,
                                                unsigned bits_log2 = 27) {
    SqliteStore::OpenOptions options;
    options.idempotency_merge_records = records;
    options.idempotency_merge_chunk = chunk;
    options.idempotency_filter_chunk = filter_chunk;
    options.idempotency_filter_bits_log2 = bits_log2;
    auto store = SqliteStore::open(dir_, options);
    EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
    return store ? std::move(store).value() : nullptr;
  }
  // Version 3 kept the idempotency records in one table keyed by the key.
  void to_schema_3_layout() {
    sql("CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
        " status INTEGER NOT NULL, body TEXT NOT NULL, position INTEGER NOT NULL,"
        " created_at_ms INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);"
        "INSERT INTO idempotency_keys SELECT key, fingerprint, status, body, position, "
        "created_at_ms"
        " FROM idempotency_records;"
        "DROP TABLE idempotency_records; DROP TABLE idempotency_index;"
        "DROP TABLE idempotency_index_state; DROP TABLE snapshot_under_way;"
        " PRAGMA user_version = 3");
  }
  static IdempotencyRecord record(const std::string& key, TimestampMs created_at_ms) {
    return IdempotencyRecord{key, "fp:" + key, 201, "{\"key\":\"" + key + "\"}", 0, created_at_ms};
  }
  // A batch of idempotency records only.
  static CommitBatch keys_batch(const std::vector<std::string>& keys, TimestampMs created_at_ms) {
    CommitBatch batch;
    for (const std::string& key : keys) {
      CommitBatch::Entry e;
      e.idempotency = record(key, created_at_ms);
      batch.entries.push_back(e);
    }
    return batch;
  }
  // One commit of idempotency records only.
  static void record_keys(EventStore& store, const std::vector<std::string>& keys,
                          TimestampMs created_at_ms) {
    auto committed = store.commit(keys_batch(keys, created_at_ms));
    ASSERT_TRUE(committed.ok()) << committed.error().message;
  }
  static bool found(EventStore& store, const std::string& key) {
    auto record = store.find_idempotency(key);
    EXPECT_TRUE(record.ok()) << record.error().message;
    return record.ok() && record.value().has_value() && record.value()->key == key;
  }
  // Records up to the index's mark without their entry, and entries of no record: both 0 when the
  // index is whole.
  std::int64_t index_problems() {
    return sql_int(
               "SELECT count(*) FROM idempotency_records AS r WHERE r.id <= (SELECT indexed_through"
               " FROM idempotency_index_state) AND NOT EXISTS (SELECT 1 FROM idempotency_index AS i"
               " WHERE i.key_hash = r.key_hash AND i.record = r.id)") +
           sql_int(
               "SELECT count(*) FROM idempotency_index AS i WHERE NOT EXISTS (SELECT 1 FROM"
               " idempotency_records AS r WHERE r.id = i.record AND r.key_hash = i.key_hash)");
  }
  static void create(EventStore& store, const std::string& id) {
    CommitBatch batch;
    batch.entries.push_back(entry({created(id)}));
    batch.wallets = {write(id, "0", 0)};
    ASSERT_TRUE(store.commit(batch).ok());
  }
  // Creates wallet "a" and credits it 1.00 `credits` times, one commit each.
  static void create_and_credit(EventStore& store, int credits) {
    create(store, "a");
    for (int version = 1; version <= credits; ++version) {
      CommitBatch credit;
      credit.entries.push_back(entry({credited("a", version, "1")}));
      credit.wallets = {write("a", std::to_string(version), version, version - 1)};
      auto committed = store.commit(credit);
      ASSERT_TRUE(committed.ok()) << committed.error().message;
    }
  }
  std::string dir_;
};

TEST_F(SqliteStoreTest, RefusesAStoreWrittenByANewerSchema) {
  ASSERT_TRUE(SqliteStore::open(dir_).ok());
  sql("PRAGMA user_version = 99");
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kSchemaTooNew);
  EXPECT_NE(store.error().message.find("schema version 99"), std::string::npos);
}

// Two stores on the same files would each decide against their own memory (the wallets changed
// since the snapshot) and could both append the same version of a wallet.
TEST_F(SqliteStoreTest, OneStorePerDataDirectoryAtATime) {
  {
    auto first = SqliteStore::open(dir_);
    ASSERT_TRUE(first.ok()) << first.error().message;
    auto second = SqliteStore::open(dir_);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("one wallex serve per data directory"), std::string::npos)
        << second.error().message;
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir_) / "wallex.lock"));
  }
  // Closed: the next one opens.
  auto again = SqliteStore::open(dir_);
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST_F(SqliteStoreTest, RefusesAForeignDatabase) {
  sql("CREATE TABLE something_else (x)");
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(store.error().message.find("not a Wallex store"), std::string::npos);
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(db_path()) << std::string(8192, 'x');
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
}

TEST_F(SqliteStoreTest, RefusesAnEmptyStoreFileInsteadOfStartingANewStoreInIt) {
  std::ofstream(db_path()).flush();  // e.g. truncated to nothing
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(store.error().message.find("holds no Wallex store"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(db_path()), 0u);  // refused before writing anything
}

TEST_F(SqliteStoreTest, RefusesALogWithoutItsDatabase) {
  std::ofstream(db_path() + "-wal") << std::string(32, 'x');
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_FALSE(std::filesystem::exists(db_path()));
}

TEST_F(SqliteStoreTest, ANewStoreIsCreatedWholeUnderAnotherNameThenRenamed) {
  ASSERT_TRUE(SqliteStore::open(dir_).ok());
  EXPECT_TRUE(std::filesystem::exists(db_path()));
  EXPECT_FALSE(std::filesystem::exists(db_path() + ".new"));
  EXPECT_TRUE(SqliteStore::check_integrity(dir_).ok());
}

TEST_F(SqliteStoreTest, ATruncatedStoreIsRefusedAtOpenAndByTheIntegrityCheck) {
  ASSERT_TRUE(SqliteStore::open(dir_).ok());
  // Enough pages that half of the file holds a good part of a table.
  sql("PRAGMA journal_mode = DELETE; CREATE TABLE filler (x);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)"
      " INSERT INTO filler SELECT randomblob(300) FROM n;");
  std::filesystem::resize_file(db_path(), std::filesystem::file_size(db_path()) / 2);
  auto store = SqliteStore::open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(store.error().message.find("is damaged and will not be served"), std::string::npos)
      << store.error().message;
  auto checked = SqliteStore::check_integrity(dir_);
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().kind, StoreErrorKind::kCorrupt);
}

TEST_F(SqliteStoreTest, UsesWalWithFullSynchronousCommits) {
  ASSERT_TRUE(SqliteStore::open(dir_).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}


TEST_F(SqliteStoreTest, CommitsBetweenSnapshotsWriteTheLogOnlyAndOpenReplaysIt) {
  {
    auto store = open_store(4, 4'096, false);  // closed as if killed
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 2);  // positions 1..3: below the threshold
    EXPECT_EQ(store->load_wallets().value(), std::vector{state("a", "2", 2)});
  }
  EXPECT_EQ(sql_int("SELECT count(*) FROM wallets"), 0);
  EXPECT_EQ(sql_int("SELECT position FROM write_model"), 0);
  {
    auto store = open_store(4, 4'096, false);  // replays positions 1..3
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->load_wallets().value(), std::vector{state("a", "2", 2)});
    CommitBatch credit;  // position 4: the snapshot goes into this commit
    credit.entries.push_back(entry({credited("a", 3, "1")}));
    credit.wallets = {write("a", "3", 3, 2)};
    ASSERT_TRUE(store->commit(credit).ok());
  }
  EXPECT_EQ(sql_int("SELECT position FROM write_model"), 4);
  EXPECT_EQ(sql_int("SELECT balance_minor FROM wallets WHERE id = 'a'"), 300);
  EXPECT_EQ(sql_int("SELECT version FROM wallets WHERE id = 'a'"), 3);
}

TEST_F(SqliteStoreTest, AStoreClosedInGoodOrderLeavesItsSnapshotComplete) {
  {
    auto store = open_store();  // the default thresholds: no snapshot while it runs
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 2);
    EXPECT_EQ(sql_int("SELECT count(*) FROM wallets"), 0);
  }
  EXPECT_EQ(sql_int("SELECT position FROM write_model"), 3);
  EXPECT_EQ(sql_int("SELECT version FROM wallets WHERE id = 'a'"), 2);
}

TEST_F(SqliteStoreTest, ASnapshotAlsoFollowsTheNumberOfChangedWallets) {
  auto store = open_store(65'536, 2);
  ASSERT_NE(store, nullptr);
  create(*store, "a");
  create(*store, "b");
  CommitBatch credit;  // a wallet changed already: still two changed, no snapshot
  credit.entries.push_back(entry({credited("a", 1, "1")}));
  credit.wallets = {write("a", "1", 1, 0)};
  ASSERT_TRUE(store->commit(credit).ok());
  EXPECT_EQ(sql_int("SELECT count(*) FROM wallets"), 0);
  // A third wallet would have left three changed: that commit wrote all three.
  create(*store, "c");
  EXPECT_EQ(sql_int("SELECT count(*) FROM wallets"), 3);
  EXPECT_EQ(sql_int("SELECT position FROM write_model"), 4);
}

// A snapshot is written a slice of rows per commit; the commit with its last row moves its
// position, so a store closed before then (as if killed) has rows ahead of the position, which
// the replay at open must pass over without applying their events twice.
TEST_F(SqliteStoreTest, ASnapshotWrittenInSlicesAndCutShortIsReplayedExactly) {
  constexpr int kWallets = 12;
  std::vector<std::int64_t> versions(kWallets, 0);
  const auto id = [](int w) { return std::string(w < 10 ? "w0" : "w") + std::to_string(w); };
  const auto expected = [&] {
    std::vector<WalletState> wallets;
    for (int w = 0; w < kWallets; ++w) {
      wallets.push_back(state(id(w), std::to_string(versions[w]), versions[w]));
    }
    return wallets;
  };
  // Rows whose version is past their wallet's last event up to the snapshot's position.
  const auto rows_ahead = [&] {
    return sql_int(
        "SELECT count(*) FROM wallets AS w WHERE w.version > (SELECT COALESCE(MAX(e.version), -1)"
        " FROM events AS e WHERE e.wallet_id = w.id AND e.position <= (SELECT position FROM"
        " write_model))");
  };
  std::int64_t seen_ahead = 0;
  for (int round = 0; round < 8; ++round) {
    // Snapshots after 8 changed wallets, two rows a commit, nothing written at close.
    auto store = open_store(65'536, 8, false, 1);
    ASSERT_NE(store, nullptr);
    ASSERT_EQ(store->load_wallets().value(), round == 0 ? std::vector<WalletState>{} : expected())
        << "round " << round;
    // Round 0 creates the wallets and credits each once (the suite's states of a wallet at
    // version 0 do not carry its creation's time), then every round credits a few.
    const int credits = round == 0 ? kWallets : 4 + round;
    if (round == 0) {
      for (int w = 0; w < kWallets; ++w) create(*store, id(w));
    }
    for (int i = 0; i < credits; ++i) {
      const int w = round == 0 ? i : (round * 7 + i * 5) % kWallets;
      CommitBatch credit;
      credit.entries.push_back(entry({credited(id(w), versions[w] + 1, "1")}));
      credit.wallets = {
          write(id(w), std::to_string(versions[w] + 1), versions[w] + 1, versions[w])};
      auto committed = store->commit(credit);
      ASSERT_TRUE(committed.ok()) << "round " << round << ": " << committed.error().message;
      ++versions[w];
    }
    EXPECT_EQ(store->load_wallets().value(), expected()) << "round " << round;
    store.reset();
    seen_ahead += rows_ahead();
  }
  EXPECT_GT(seen_ahead, 0) << "no round closed with a snapshot under way";
  auto store = open_store(65'536, 8, false, 1);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->load_wallets().value(), expected());
}

// A row ahead of the snapshot's position must be at a version of its wallet's log: one ahead of
// every event is damage, not a snapshot cut short.
TEST_F(SqliteStoreTest, ARowAheadOfItsWalletsLogIsRefusedAtOpen) {
  {
    auto store = open_store(3, 4'096, false);
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 4);  // snapshot at position 3 (a at version 2), two credits after
  }
  ASSERT_EQ(sql_int("SELECT position FROM write_model"), 3);
  // As a snapshot cut short leaves it: the row at version 3, the state of position 4.
  sql("UPDATE wallets SET version = 3, balance_minor = 250 WHERE id = 'a';"
      "INSERT INTO snapshot_under_way (id, position) VALUES (1, 4)");
  {  // passed over up to version 3; the credit of version 4 applies to the row
    auto store = open_store(65'536, 4'096, false);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->load_wallets().value(), std::vector{state("a", "3.50", 4)});
  }
  sql("UPDATE wallets SET version = 7 WHERE id = 'a'");
  SqliteStore::OpenOptions options;
  auto store = SqliteStore::open(dir_, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(store.error().message.find("is ahead of its state at position 4"), std::string::npos)
      << store.error().message;
}

// 3 only marked that idempotency records may hold compact replies (sqlite_store.h): a store of
// version 2 keeps every row and is migrated at open, so that an older wallex refuses it.
TEST_F(SqliteStoreTest, AStoreOfSchemaVersion2IsMigratedWithItsRows) {
  {
    auto store = open_store(1);
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 3);
    record_keys(*store, {"k"}, 100);
  }
  to_schema_3_layout();
  sql("PRAGMA user_version = 2");
  auto store = SqliteStore::open(dir_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(sql_int("PRAGMA user_version"), kSqliteSchemaVersion);
  EXPECT_EQ(store.value()->load_wallets().value(), std::vector{state("a", "3", 3)});
  EXPECT_EQ(store.value()->last_position().value(), 4);
  EXPECT_EQ(store.value()->find_idempotency("k").value(), record("k", 100));
}

TEST_F(SqliteStoreTest, AStoreOfSchemaVersion1IsMigratedWithItsRowsAsTheSnapshot) {
  {
    auto store = open_store(1);  // a snapshot with every commit
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 3);
  }
  // What version 1 left: the same rows, written with every commit, no write_model table, and
  // the idempotency records keyed by the key.
  to_schema_3_layout();
  sql("DROP TABLE write_model; PRAGMA user_version = 1");
  auto store = SqliteStore::open(dir_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(store.value()->load_wallets().value(), std::vector{state("a", "3", 3)});
  EXPECT_EQ(sql_int("PRAGMA user_version"), kSqliteSchemaVersion);
  EXPECT_EQ(sql_int("SELECT position FROM write_model"), 4);
}

// 4: the records in the order they were written, found through an index of key hashes.
TEST_F(SqliteStoreTest, AStoreOfSchemaVersion3KeepsEveryIdempotencyRecord) {
  {
    auto store = open_store();
    ASSERT_NE(store, nullptr);
    record_keys(*store, {"k2"}, 300);
    record_keys(*store, {"k3"}, 100);
    record_keys(*store, {"k1"}, 200);
  }
  to_schema_3_layout();
  auto store = open_store();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(sql_int("PRAGMA user_version"), kSqliteSchemaVersion);
  EXPECT_EQ(sql_int("SELECT count(*) FROM snapshot_under_way"), 0);
  EXPECT_EQ(sql_int("SELECT count(*) FROM sqlite_schema WHERE name = 'idempotency_keys'"), 0);
  EXPECT_EQ(store->find_idempotency("k3").value(), record("k3", 100));
  EXPECT_EQ(store->find_idempotency("k1").value(), record("k1", 200));
  EXPECT_EQ(store->find_idempotency("k2").value(), record("k2", 300));
  // Ids in the order the records were made, which purging from the front relies on.
  EXPECT_EQ(sql_int("SELECT id FROM idempotency_records WHERE key = 'k3'"), 1);
  EXPECT_EQ(sql_int("SELECT id FROM idempotency_records WHERE key = 'k1'"), 2);
  EXPECT_EQ(sql_int("SELECT id FROM idempotency_records WHERE key = 'k2'"), 3);
  EXPECT_EQ(sql_int("SELECT indexed_through FROM idempotency_index_state"), 3);
  EXPECT_EQ(index_problems(), 0);
  record_keys(*store, {"k4"}, 5'000);  // after the migrated ones
  EXPECT_EQ(sql_int("SELECT id FROM idempotency_records WHERE key = 'k4'"), 4);
  EXPECT_EQ(store->purge_idempotency(1'000, 100).value(), 3);
  EXPECT_FALSE(found(*store, "k1"));
  EXPECT_TRUE(found(*store, "k4"));
}

// After a purge of every record, new ids must still come after the index's mark: a record at or
// below it would be neither in the index nor read back into memory at the next start.
TEST_F(SqliteStoreTest, NewRecordsAfterAPurgeOfEverythingAreFoundAfterARestart) {
  {
    auto store = open_with_merges(4, 64);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 5; ++i) record_keys(*store, {"old-" + std::to_string(i)}, 100);
    ASSERT_EQ(sql_int("SELECT indexed_through FROM idempotency_index_state"), 4);
    EXPECT_EQ(store->purge_idempotency(1'000, 100).value(), 5);
  }
  {
    auto store = open_with_merges(4, 64);
    ASSERT_NE(store, nullptr);
    record_keys(*store, {"new"}, 5'000);
  }
  auto store = open_with_merges(4, 64);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(found(*store, "new"));
  EXPECT_EQ(index_problems(), 0);
}

TEST_F(SqliteStoreTest, IdempotencyRecordsAreMergedIntoTheirIndexAndFoundAllAlong) {
  std::vector<std::string> keys;
  {
    auto store = open_with_merges(4, 2);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      keys.push_back("key-" + std::to_string(i));
      record_keys(*store, {keys.back()}, 100);
      for (const std::string& key : keys) ASSERT_TRUE(found(*store, key)) << key << " after " << i;
      ASSERT_EQ(index_problems(), 0) << "after " << i;
    }
    // Merges of four records, at least two entries a commit: the first four were indexed long ago.
    EXPECT_GE(sql_int("SELECT indexed_through FROM idempotency_index_state"), 12);
    EXPECT_LT(sql_int("SELECT count(*) FROM idempotency_index"), 20);
  }
  auto store = open_with_merges(4, 2);
  ASSERT_NE(store, nullptr);
  for (const std::string& key : keys) EXPECT_TRUE(found(*store, key)) << key;
  EXPECT_FALSE(found(*store, "key-20"));
}

// Commits of more records, and merges that write more entries a commit, than one statement takes
// (16): commits of 20 records, merges of 50 records, at least 40 entries a commit. Every record is
// found whole all along, the index holds exactly its records, and after a restart too.
TEST_F(SqliteStoreTest, ManyRecordsACommitAndMergesOfManyEntriesKeepEveryKey) {
  std::vector<std::string> keys;
  const auto found_whole = [](EventStore& store, const std::string& key) {
    auto found = store.find_idempotency(key);
    ASSERT_TRUE(found.ok()) << found.error().message;
    ASSERT_TRUE(found.value().has_value()) << key;
    EXPECT_EQ(*found.value(), record(key, 100)) << key;
  };
  {
    auto store = open_with_merges(50, 40);
    ASSERT_NE(store, nullptr);
    for (int commit = 0; commit < 15; ++commit) {
      std::vector<std::string> batch;
      for (int i = 0; i < 20; ++i) batch.push_back("key-" + std::to_string(commit * 20 + i));
      record_keys(*store, batch, 100);
      keys.insert(keys.end(), batch.begin(), batch.end());
      ASSERT_EQ(index_problems(), 0) << "after commit " << commit;
    }
    for (const std::string& key : keys) found_whole(*store, key);
    EXPECT_GE(sql_int("SELECT indexed_through FROM idempotency_index_state"), 200);
    EXPECT_GE(sql_int("SELECT count(*) FROM idempotency_index"),
              sql_int("SELECT indexed_through FROM idempotency_index_state"));
  }
  auto store = open_with_merges(50, 40);
  ASSERT_NE(store, nullptr);
  for (const std::string& key : keys) found_whole(*store, key);
  EXPECT_FALSE(found(*store, "key-300"));
}

// The documents a commit hands back (for the projector's feed) are those of its events, in order,
// also when they were appended many to a statement.
TEST_F(SqliteStoreTest, TheDocumentsOfALargeCommitAreItsEventsInOrder) {
  auto store = open_store(65'536, 4'096, false);
  ASSERT_NE(store, nullptr);
  CommitBatch batch;
  batch.keep_documents = true;
  batch.entries.push_back(entry({created("a")}));
  for (int i = 1; i <= 20; ++i) {
    batch.entries.push_back(entry({credited("a", i, std::to_string(i))}, "c-" + std::to_string(i)));
  }
  batch.wallets = {write("a", "210", 20)};
  auto result = store->commit(batch);
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result.value().documents.size(), 21u);
  for (std::size_t i = 0; i < batch.entries.size(); ++i) {
    const CommitBatch::Entry& e = batch.entries[i];
    EXPECT_EQ(result.value().documents[i].data_json, encode_event_data(e.events.front())) << i;
    EXPECT_EQ(result.value().documents[i].metadata_json,
              encode_event_metadata(e.events.front(), e.metadata))
        << i;
  }
}

// The writer's pipelined path: batches written (not yet synced) one after another while merges
// go on, every key found after each write, and a batch refused for a stale version in the middle
// of a merge leaves neither its record nor a hole in the merge.
TEST_F(SqliteStoreTest, KeysOfWrittenBatchesAreFoundWhileMergesGoOnAndARefusedBatchLeavesNone) {
  std::vector<std::string> keys;
  {
    auto store = open_with_merges(4, 1);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 16; ++i) {
      keys.push_back("key-" + std::to_string(i));
      ASSERT_TRUE(store->write(keys_batch({keys.back()}, 100)).ok()) << i;
      for (const std::string& key : keys) ASSERT_TRUE(found(*store, key)) << key << " after " << i;
      if (i == 6 || i == 11) {
        // A credit of a wallet that does not exist, decided against its version 3: its event
        // and its key are appended before the write model refuses it.
        const std::string ghost = "ghost-" + std::to_string(i);
        CommitBatch stale;
        stale.entries.push_back(
            entry({credited(ghost, 4, "1.00")}, "corr", "refused-" + std::to_string(i)));
        stale.entries.back().idempotency = record("refused-" + std::to_string(i), 100);
        stale.wallets = {write(ghost, "1.00", 4, 3)};
        auto refused = store->write(stale);
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error().kind, StoreErrorKind::kConflict) << refused.error().message;
        EXPECT_FALSE(found(*store, "refused-" + std::to_string(i)));
      }
      ASSERT_EQ(index_problems(), 0) << "after " << i;
    }
    ASSERT_TRUE(store->sync().ok());
    EXPECT_GE(sql_int("SELECT indexed_through FROM idempotency_index_state"), 8);
    // The refused batches took no id: the records are numbered without a gap.
    EXPECT_EQ(sql_int("SELECT max(id) - min(id) + 1 FROM idempotency_records"), 16);
  }
  auto store = open_with_merges(4, 1);
  ASSERT_NE(store, nullptr);
  for (const std::string& key : keys) EXPECT_TRUE(found(*store, key)) << key;
  EXPECT_FALSE(found(*store, "refused-6"));
  EXPECT_FALSE(found(*store, "refused-11"));
  EXPECT_EQ(index_problems(), 0);
}

TEST_F(SqliteStoreTest, AStoreClosedInTheMiddleOfAMergeLosesNoKey) {
  {
    auto store = open_with_merges(4, 1);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 5; ++i) record_keys(*store, {"key-" + std::to_string(i)}, 100);
  }
  // The fifth commit began merging the first four: two entries written (twice its one record),
  // the mark not moved.
  ASSERT_EQ(sql_int("SELECT count(*) FROM idempotency_index"), 2);
  ASSERT_EQ(sql_int("SELECT indexed_through FROM idempotency_index_state"), 0);
  auto store = open_with_merges(4, 1);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(found(*store, "key-" + std::to_string(i))) << i;
  for (int i = 5; i < 12; ++i) record_keys(*store, {"key-" + std::to_string(i)}, 100);
  EXPECT_GE(sql_int("SELECT indexed_through FROM idempotency_index_state"), 4);
  EXPECT_EQ(index_problems(), 0);
  for (int i = 0; i < 12; ++i) EXPECT_TRUE(found(*store, "key-" + std::to_string(i))) << i;
}

TEST_F(SqliteStoreTest, APurgeDuringAMergeLeavesNoEntryBehind) {
  auto store = open_with_merges(4, 1);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 4; ++i) record_keys(*store, {"old-" + std::to_string(i)}, 100);
  record_keys(*store, {"new-0"}, 5'000);  // begins merging the four old ones, two of them
  ASSERT_EQ(sql_int("SELECT count(*) FROM idempotency_index"), 2);
  EXPECT_EQ(store->purge_idempotency(1'000, 100).value(), 4);
  for (int i = 1; i < 8; ++i) record_keys(*store, {"new-" + std::to_string(i)}, 5'000);
  EXPECT_GE(sql_int("SELECT indexed_through FROM idempotency_index_state"), 4);
  EXPECT_EQ(index_problems(), 0);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(found(*store, "old-" + std::to_string(i))) << i;
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(found(*store, "new-" + std::to_string(i))) << i;
}

TEST_F(SqliteStoreTest, ARecordBehindTheSameHashButAnotherKeyIsNoAnswer) {
  auto store = open_with_merges(1, 1);
  ASSERT_NE(store, nullptr);
  record_keys(*store, {"k1"}, 100);
  record_keys(*store, {"k2"}, 100);  // merges k1
  ASSERT_EQ(sql_int("SELECT indexed_through FROM idempotency_index_state"), 1);
  // A collision, made by hand: "absent" hashes to k1's record.
  const auto hash = static_cast<std::int64_t>(IdempotencyRecords::key_hash("absent"));
  sql(("INSERT INTO idempotency_index (key_hash, record) VALUES (" + std::to_string(hash) + ", 1)")
          .c_str());
  EXPECT_FALSE(found(*store, "absent"));
  EXPECT_TRUE(found(*store, "k1"));
}

TEST_F(SqliteStoreTest, AKeyRecordedAgainAfterItExpiredAnswersWithItsNewestRecord) {
  auto store = open_with_merges(1, 1);
  ASSERT_NE(store, nullptr);
  record_keys(*store, {"k"}, 100);
  record_keys(*store, {"other"}, 200);  // indexes the first record of k
  record_keys(*store, {"k"}, 5'000);
  EXPECT_EQ(store->find_idempotency("k").value(), record("k", 5'000));
  EXPECT_EQ(store->purge_idempotency(1'000, 100).value(), 2);
  EXPECT_EQ(store->find_idempotency("k").value(), record("k", 5'000));
}

// Most lookups are of new keys: once the filter holds the whole index, they read nothing; after
// a restart every lookup reads the index until a rebuild has read it again.
TEST_F(SqliteStoreTest, NewKeysAreAnsweredFromTheFilterOnceItHoldsTheWholeIndex) {
  std::vector<std::string> keys;
  const auto reads_for_absent_keys = [](SqliteStore& store, int round) {
    const std::int64_t before = store.idempotency_index_reads();
    for (int i = 0; i < 100; ++i) {
      EXPECT_FALSE(found(store, "absent-" + std::to_string(round) + "-" + std::to_string(i)));
    }
    return store.idempotency_index_reads() - before;
  };
  {
    auto store = open_with_merges(4, 64, 1, 27);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 40; ++i) {
      keys.push_back("key-" + std::to_string(i));
      record_keys(*store, {keys.back()}, 100);
    }
    ASSERT_GE(sql_int("SELECT count(*) FROM idempotency_index"), 32);
    EXPECT_EQ(store->idempotency_filter_rebuilds(), 1);  // of the empty index, at the first commit
    EXPECT_EQ(reads_for_absent_keys(*store, 0), 0);
    for (const std::string& key : keys) EXPECT_TRUE(found(*store, key)) << key;
    EXPECT_GT(store->idempotency_index_reads(), 0);  // the indexed keys were read from the index
  }
  auto store = open_with_merges(4, 64, 1, 27);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(reads_for_absent_keys(*store, 1), 100);  // no filter yet
  // Eight entries read with each commit of one record: the index's 32 to 40 (and the merges'
  // few more) in five to seven commits.
  int commits = 0;
  while (store->idempotency_filter_rebuilds() == 0 && commits < 10) {
    keys.push_back("key-" + std::to_string(40 + commits++));
    record_keys(*store, {keys.back()}, 100);
    if (commits == 4) {
      EXPECT_EQ(reads_for_absent_keys(*store, 2), 100);  // not read whole yet
    }
  }
  EXPECT_GE(commits, 5);
  EXPECT_LE(commits, 7);
  EXPECT_EQ(store->idempotency_filter_rebuilds(), 1);
  EXPECT_EQ(reads_for_absent_keys(*store, 3), 0);
  for (const std::string& key : keys) EXPECT_TRUE(found(*store, key)) << key;
}

// No key is ever missed by the filter: records are merged into the index, purged, and the filter
// rebuilt while merges go on, across restarts; with a filter of 64 bits (nearly every lookup a
// false "maybe") and with the default one.
TEST_F(SqliteStoreTest, TheFilterNeverHidesARecordThroughMergesPurgesRebuildsAndRestarts) {
  for (const unsigned bits_log2 : {6U, 27U}) {
    SCOPED_TRACE("filter of 2^" + std::to_string(bits_log2) + " bits");
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::vector<std::pair<std::string, TimestampMs>> live;  // key, created at
    std::vector<std::string> purged;
    std::int64_t rebuilds = 0;
    int next = 0;
    TimestampMs now = 1'000;
    for (int life = 0; life < 4; ++life) {
      auto store = open_with_merges(4, 1, 1, bits_log2);
      ASSERT_NE(store, nullptr);
      for (int commit = 0; commit < 60; ++commit) {
        std::vector<std::string> keys;
        for (int k = 0; k <= commit % 3; ++k) keys.push_back("key-" + std::to_string(next++));
        record_keys(*store, keys, now);
        for (const std::string& key : keys) live.emplace_back(key, now);
        now += 10;
        if (commit % 20 == 19) {
          // Everything older than 300 ms, from the front.
          const TimestampMs before = now - 300;
          std::int64_t expired = 0;
          while (!live.empty() && live.front().second < before) {
            purged.push_back(live.front().first);
            live.erase(live.begin());
            ++expired;
          }
          ASSERT_EQ(store->purge_idempotency(before, 1'000).value(), expired);
        }
        for (const auto& [key, at] : live) ASSERT_TRUE(found(*store, key)) << key;
        std::vector<std::string> absent;
        for (std::size_t i = purged.size() > 10 ? purged.size() - 10 : 0; i < purged.size(); ++i) {
          ASSERT_FALSE(found(*store, purged[i])) << purged[i];
          absent.push_back(purged[i]);
        }
        // The writer's way, all of a batch's keys at once (no read transaction when the filter
        // rules them all out): the same answers.
        absent.push_back("never-" + std::to_string(commit));
        auto many = store->find_idempotency_many(absent);
        ASSERT_TRUE(many.ok()) << many.error().message;
        for (const auto& record : many.value()) ASSERT_FALSE(record.has_value());
        std::vector<std::string> recent;
        for (std::size_t i = live.size() > 5 ? live.size() - 5 : 0; i < live.size(); ++i) {
          recent.push_back(live[i].first);
        }
        recent.push_back(live.front().first);
        auto present = store->find_idempotency_many(recent);
        ASSERT_TRUE(present.ok()) << present.error().message;
        for (std::size_t i = 0; i < recent.size(); ++i) {
          ASSERT_TRUE(present.value()[i].has_value()) << recent[i];
          ASSERT_EQ(present.value()[i]->key, recent[i]);
        }
      }
      ASSERT_EQ(index_problems(), 0);
      rebuilds += store->idempotency_filter_rebuilds();
    }
    // One rebuild after each start, and more after purges.
    EXPECT_GT(rebuilds, 4);
  }
}

// The filter holds the records not merged yet as well (a lookup of a new key looks at nothing
// else): records read back at open, before the rebuild's scan began, are in the rebuilt filter.
TEST_F(SqliteStoreTest, RecordsStillInMemoryWhenTheFilterIsRebuiltAreInIt) {
  std::vector<std::string> keys;
  {
    auto store = open_with_merges(1'000, 64, 1, 27);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 10; ++i) keys.push_back("kept-" + std::to_string(i));
    record_keys(*store, keys, 100);
  }
  ASSERT_EQ(sql_int("SELECT count(*) FROM idempotency_index"), 0);  // all of them in memory
  auto store = open_with_merges(1'000, 64, 1, 27);
  ASSERT_NE(store, nullptr);
  record_keys(*store, {"after-restart"}, 200);  // the empty index's rebuild: done in one commit
  ASSERT_EQ(store->idempotency_filter_rebuilds(), 1);
  keys.push_back("after-restart");
  // One key at a time: a batch is looked up whole as soon as one of its keys may exist.
  for (const std::string& key : keys) {
    auto many = store->find_idempotency_many({key});
    ASSERT_TRUE(many.ok()) << many.error().message;
    ASSERT_TRUE(many.value()[0].has_value()) << key;
    EXPECT_EQ(many.value()[0]->key, key);
    EXPECT_TRUE(found(*store, key)) << key;
  }
}

TEST_F(SqliteStoreTest, ALogThatDoesNotContinueTheSnapshotIsRefusedAtOpen) {
  {
    auto store = open_store(2, 4'096, false);
    ASSERT_NE(store, nullptr);
    create_and_credit(*store, 2);  // snapshot at position 2, position 3 after it
  }
  ASSERT_EQ(sql_int("SELECT position FROM write_model"), 2);
  sql("UPDATE wallets SET version = 5 WHERE id = 'a'");
  SqliteStore::OpenOptions options;
  auto store = SqliteStore::open(dir_, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(store.error().message.find("does not continue the write model's snapshot at position 3"),
            std::string::npos)
      << store.error().message;
}

}  // namespace
}  // namespace wallex::testing
