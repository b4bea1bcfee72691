#include "store/sqlite/page_cache.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "store/sqlite/sqlite_error.h"

namespace wallex::testing {
namespace {

// Installs the wrapper (SQLite must not be initialized then: no connection of an earlier test
// may be open) and initializes SQLite on it.
void install() {
  ASSERT_EQ(sqlite3_shutdown(), SQLITE_OK);
  ASSERT_TRUE(install_page_cache());
  ASSERT_EQ(sqlite3_initialize(), SQLITE_OK);
}

// One cache driven through the wrapper's methods as SQLite's pager drives it.
class PageCacheMethodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    install();
    cache_ = methods().xCreate(4096, 64, 1);
    ASSERT_NE(cache_, nullptr);
    methods().xCachesize(cache_, 10'000);
  }
  void TearDown() override { methods().xDestroy(cache_); }

  static const sqlite3_pcache_methods2& methods() { return page_cache_methods(); }
  void load(unsigned first, unsigned last) {
    for (unsigned key = first; key <= last; ++key) {
      sqlite3_pcache_page* page = methods().xFetch(cache_, key, 2);
      ASSERT_NE(page, nullptr) << key;
      methods().xUnpin(cache_, page, 0);
    }
  }
  bool holds(unsigned key) {
    sqlite3_pcache_page* page = methods().xFetch(cache_, key, 0);
    if (page == nullptr) return false;
    methods().xUnpin(cache_, page, 0);
    return true;
  }

  sqlite3_pcache* cache_ = nullptr;
};

// The case the wrapper exists for: a page parked under the pending-byte page number and moved
// back, then a truncate a little beyond the end of the database.
TEST_F(PageCacheMethodsTest, ATruncateDropsExactlyThePagesAtOrBeyondItsLimit) {
  load(1, 100);
  sqlite3_pcache_page* page = methods().xFetch(cache_, 40, 0);
  ASSERT_NE(page, nullptr);
  methods().xRekey(cache_, page, 40, 262'145);
  methods().xRekey(cache_, page, 262'145, 101);
  methods().xUnpin(cache_, page, 0);
  page = methods().xFetch(cache_, 50, 0);
  ASSERT_NE(page, nullptr);
  methods().xRekey(cache_, page, 50, 262'145);  // left there
  methods().xUnpin(cache_, page, 0);
  EXPECT_EQ(methods().xPagecount(cache_), 100);

  methods().xTruncate(cache_, 90);
  for (unsigned key = 1; key < 90; ++key) {
    EXPECT_EQ(holds(key), key != 40 && key != 50) << key;
  }
  for (unsigned key : {90u, 95u, 100u, 101u, 262'145u}) EXPECT_FALSE(holds(key)) << key;
  EXPECT_EQ(methods().xPagecount(cache_), 87);

  // A page discarded by its user stays marked; truncating past it again is harmless.
  page = methods().xFetch(cache_, 89, 0);
  ASSERT_NE(page, nullptr);
  methods().xUnpin(cache_, page, 1);
  methods().xTruncate(cache_, 80);
  EXPECT_TRUE(holds(79));
  EXPECT_FALSE(holds(80));
  EXPECT_EQ(methods().xPagecount(cache_), 77);
}

// The wrapper scans only up to the last word of its bitmap that may hold a mark, and a truncate
// lowers that bound: pages marked after it, far beyond the end or just past it, are still found.
TEST_F(PageCacheMethodsTest, PagesMarkedAfterATruncateAreDroppedByTheNext) {
  load(1, 100);
  sqlite3_pcache_page* page = methods().xFetch(cache_, 50, 0);
  ASSERT_NE(page, nullptr);
  methods().xRekey(cache_, page, 50, 262'145);
  methods().xUnpin(cache_, page, 0);
  methods().xTruncate(cache_, 90);
  EXPECT_FALSE(holds(262'145));
  EXPECT_EQ(methods().xPagecount(cache_), 88);

  load(262'145, 262'145);
  load(5'000, 5'000);
  load(90, 93);
  EXPECT_EQ(methods().xPagecount(cache_), 94);
  methods().xTruncate(cache_, 92);
  for (unsigned key : {92u, 93u, 5'000u, 262'145u}) EXPECT_FALSE(holds(key)) << key;
  EXPECT_TRUE(holds(91));
  EXPECT_EQ(methods().xPagecount(cache_), 90);

  // A truncate that leaves no mark in its first word, then new pages in a word beyond it.
  methods().xTruncate(cache_, 64);
  EXPECT_EQ(methods().xPagecount(cache_), 62);
  load(200, 201);
  methods().xTruncate(cache_, 201);
  EXPECT_TRUE(holds(200));
  EXPECT_FALSE(holds(201));
  EXPECT_EQ(methods().xPagecount(cache_), 63);
}

TEST_F(PageCacheMethodsTest, ATruncateOfManyPagesIsLeftToTheCacheBeneath) {
  load(1, 500);
  methods().xTruncate(cache_, 1);  // a reset: 500 pages beyond the limit
  EXPECT_EQ(methods().xPagecount(cache_), 0);
  for (unsigned key : {1u, 2u, 250u, 500u}) EXPECT_FALSE(holds(key)) << key;
  // The cache goes on working after it, the bitmap cleared with it.
  load(1, 10);
  methods().xTruncate(cache_, 6);
  EXPECT_EQ(methods().xPagecount(cache_), 5);
  EXPECT_TRUE(holds(5));
  EXPECT_FALSE(holds(6));
}

// SQLite on the wrapper: B-tree splits (random keys), commits, rollbacks of a transaction that
// grew the file, and a second connection that must see every commit.
TEST(PageCacheTest, SqliteStaysConsistentOnIt) {
  install();
  std::string pattern = (std::filesystem::temp_directory_path() / "wallex-pcache-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const std::string path = pattern + "/test.db";
  sqlite3* db = nullptr;
  sqlite3* reader = nullptr;
  ASSERT_EQ(open_sqlite(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE), SQLITE_OK);
  auto exec = [&](sqlite3* on, const std::string& sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(on, sql.c_str(), nullptr, nullptr, &message);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (message ? message : "");
    sqlite3_free(message);
  };
  auto count = [&](sqlite3* on) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(on, "SELECT count(*), coalesce(sum(length(v)), 0) FROM t", -1,
                                 &statement, nullptr),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW);
    const auto rows =
        sqlite3_column_int64(statement, 0) * 1'000'000'000 + sqlite3_column_int64(statement, 1);
    sqlite3_finalize(statement);
    return rows;
  };
  exec(db,
       "PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536;"
       " CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
  ASSERT_EQ(open_sqlite(path.c_str(), &reader, SQLITE_OPEN_READONLY), SQLITE_OK);
  std::mt19937_64 random(7);
  int committed = 0;
  for (int transaction = 0; transaction < 300; ++transaction) {
    exec(db, "BEGIN");
    for (int row = 0; row < 40; ++row) {
      exec(db, "INSERT INTO t VALUES (randomblob(16), zeroblob(" +
                   std::to_string(100 + random() % 900) + "))");
    }
    if (transaction % 7 == 3) {
      exec(db, "ROLLBACK");  // the file had grown: its new pages leave the cache
    } else {
      exec(db, "COMMIT");
      committed += 40;
    }
    if (transaction % 50 == 49) {  // pages merge and go to the free list
      exec(db, "DELETE FROM t WHERE k < x'40'");
      committed -= sqlite3_changes(db);
    }
    if (transaction % 10 == 0) {
      EXPECT_EQ(count(reader), count(db)) << transaction;
    }
  }
  EXPECT_EQ(count(db) / 1'000'000'000, committed);
  EXPECT_EQ(count(reader), count(db));
  sqlite3_stmt* check = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &check, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(check), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(check, 0)), "ok");
  sqlite3_finalize(check);
  sqlite3_close(reader);
  sqlite3_close(db);
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace wallex::testing
