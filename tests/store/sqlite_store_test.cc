#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "store/sqlite/sqlite_store.h"
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
  SqliteHarness() : dir_(make_temp_dir()) {}
  ~SqliteHarness() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<EventStore> open() override {
    auto store = SqliteStore::open(dir_);
    EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
    return store ? std::move(store).value() : nullptr;
  }

 private:
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreSuite,
                         ::testing::Values(StoreFactory{
                             "sqlite", [] { return std::make_unique<SqliteHarness>(); }}),
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

}  // namespace
}  // namespace wallex::testing
