// The store suite against PostgreSQL (each test on a fresh database), plus what only a shared
// store has: several stores committing at once, conflicts between them, the gap-free log under
// concurrency, migrations and connection loss. Runs through scripts/with-pg.sh (WALLEX_PG_URL).
#include <atomic>
#include <future>
#include <thread>

#include "pg_database.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_migrations.h"
#include "store/postgres/pg_store.h"
#include "store_suite.h"

namespace wallex::testing {
namespace {

std::unique_ptr<PgStore> open_store(const std::string& url) {
  auto store = PgStore::open(url);
  EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
  return store ? std::move(store).value() : nullptr;
}

class PgHarness final : public StoreHarness {
 public:
  PgHarness() : database_(PgDatabase::create()) {}
  std::unique_ptr<EventStore> open() override {
    if (database_ == nullptr) return nullptr;  // create() recorded why
    return open_store(database_->url());
  }

 private:
  std::unique_ptr<PgDatabase> database_;
};

INSTANTIATE_TEST_SUITE_P(Postgres, StoreSuite,
                         ::testing::Values(StoreFactory{
                             "postgres", [] { return std::make_unique<PgHarness>(); }}),
                         [](const auto& param_info) { return param_info.param.name; });

Money money(std::int64_t cents) { return Money::from_minor(cents); }

Event make_event(EventType type, const std::string& wallet, std::int64_t version,
                 std::int64_t cents = 0) {
  Event e;
  e.type = type;
  e.wallet_id = wallet;
  e.version = version;
  e.occurred_at_ms = 1000 + version;
  if (type == EventType::kWalletCreated) {
    e.owner_id = "owner";
  } else {
    e.amount = money(cents);
  }
  return e;
}

WalletState wallet_state(const std::string& id, std::int64_t cents, std::int64_t version) {
  return WalletState{id, "owner", money(cents), version, 1000, 1000 + version};
}

// A batch creating `id` (version 0).
CommitBatch create_batch(const std::string& id, std::optional<std::string> key = std::nullopt,
                         TimestampMs key_created_ms = 5000) {
  CommitBatch batch;
  CommitBatch::Entry entry;
  entry.events = {make_event(EventType::kWalletCreated, id, 0)};
  entry.metadata = EventMetadata{"corr", key};
  if (key) entry.idempotency = IdempotencyRecord{*key, "fp", 201, "{}", 0, key_created_ms};
  batch.entries.push_back(entry);
  batch.wallets = {WalletWrite{wallet_state(id, 0, 0), -1}};
  return batch;
}

// A batch crediting `id` from `version` (the wallet holds `cents` before) by `count` cents,
// one entry per cent.
CommitBatch credit_batch(const std::string& id, std::int64_t version, std::int64_t cents,
                         int count) {
  CommitBatch batch;
  for (int i = 1; i <= count; ++i) {
    CommitBatch::Entry entry;
    entry.events = {make_event(EventType::kWalletCredited, id, version + i, 1)};
    entry.metadata = EventMetadata{"corr", std::nullopt};
    batch.entries.push_back(entry);
  }
  batch.wallets = {WalletWrite{wallet_state(id, cents + count, version + count), version}};
  return batch;
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = PgDatabase::create();
    ASSERT_NE(database_, nullptr);
  }
  std::unique_ptr<PgDatabase> database_;
};

TEST(PgErrorMapping, SqlstatesMapToStoreErrorKinds) {
  EXPECT_EQ(classify_sqlstate("23505", false), StoreErrorKind::kConflict);
  EXPECT_EQ(classify_sqlstate("40001", false), StoreErrorKind::kConflict);
  EXPECT_EQ(classify_sqlstate("40P01", false), StoreErrorKind::kConflict);
  EXPECT_EQ(classify_sqlstate("53100", false), StoreErrorKind::kFull);
  EXPECT_EQ(classify_sqlstate("53300", false), StoreErrorKind::kOther);  // too many connections
  EXPECT_EQ(classify_sqlstate("08006", false), StoreErrorKind::kIo);
  EXPECT_EQ(classify_sqlstate("57P01", false), StoreErrorKind::kIo);
  EXPECT_EQ(classify_sqlstate("", true), StoreErrorKind::kIo);
  EXPECT_EQ(classify_sqlstate("23505", true), StoreErrorKind::kIo);  // outcome unknown
  EXPECT_EQ(classify_sqlstate("42P01", false), StoreErrorKind::kOther);
}

TEST(PgConnectionTest, AnUnreachableServerIsAnIoErrorNamingTheUrlWithoutItsPassword) {
  auto connection = PgConnection::connect("postgresql://me:secret@127.0.0.1:1/db");
  ASSERT_FALSE(connection.ok());
  EXPECT_EQ(connection.error().kind, StoreErrorKind::kIo);
  EXPECT_NE(connection.error().message.find("postgresql://me:***@127.0.0.1:1/db"),
            std::string::npos)
      << connection.error().message;
  EXPECT_EQ(connection.error().message.find("secret"), std::string::npos);
}

TEST(PgConnectionTest, ArrayLiteralsQuoteEverything) {
  ArrayLiteral literal;
  literal.add(std::optional<std::string_view>("a\"b\\c,{d}"));
  literal.add(std::optional<std::string_view>());
  literal.add(std::int64_t{-7});
  EXPECT_EQ(literal.take(), "{\"a\\\"b\\\\c,{d}\",NULL,-7}");
}

TEST_F(PgStoreTest, IsSharedAndReadsTheWalletsAskedFor) {
  auto store = open_store(database_->url());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->shared());
  ASSERT_TRUE(store->commit(create_batch("a")).ok());
  ASSERT_TRUE(store->commit(create_batch("b")).ok());
  auto wallets = store->read_wallets({"b", "missing"});
  ASSERT_TRUE(wallets.ok()) << wallets.error().message;
  ASSERT_EQ(wallets.value().size(), 1u);
  EXPECT_EQ(wallets.value()[0], wallet_state("b", 0, 0));
  EXPECT_TRUE(store->read_wallets({}).value().empty());
}

// PostgreSQL text cannot hold a NUL byte; a description may (an escaped \u0000 in the request):
// the stored JSON escapes it, so it round-trips.
TEST_F(PgStoreTest, ADescriptionWithANulCharacterRoundTrips) {
  auto store = open_store(database_->url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commit(create_batch("a")).ok());
  CommitBatch batch = credit_batch("a", 0, 0, 1);
  batch.entries[0].events[0].description = std::string("x\0y\x01\"\\", 6);
  ASSERT_TRUE(store->commit(batch).ok());
  auto events = store->read_events(1, 10);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events.value().size(), 1u);
  EXPECT_EQ(events.value()[0].event, batch.entries[0].events[0]);
}

TEST_F(PgStoreTest, AnotherStoresChangesAreConflictsAndLeaveNoTrace) {
  auto first = open_store(database_->url());
  auto second = open_store(database_->url());
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->commit(create_batch("w", "key-1")).ok());

  // The second instance has not seen "w": creating it again, or writing the same key, conflicts.
  auto created_again = second->commit(create_batch("w"));
  ASSERT_FALSE(created_again.ok());
  EXPECT_EQ(created_again.error().kind, StoreErrorKind::kConflict) << created_again.error().message;
  auto same_key = second->commit(create_batch("v", "key-1"));
  ASSERT_FALSE(same_key.ok());
  EXPECT_EQ(same_key.error().kind, StoreErrorKind::kConflict) << same_key.error().message;

  // A stale expected version conflicts too.
  ASSERT_TRUE(first->commit(credit_batch("w", 0, 0, 2)).ok());
  auto stale = second->commit(credit_batch("w", 0, 0, 1));
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().kind, StoreErrorKind::kConflict) << stale.error().message;

  // None of the failed commits took a position or left a row.
  EXPECT_EQ(second->last_position().value(), 3);
  EXPECT_EQ(second->read_wallets({"v"}).value().size(), 0u);
  auto fresh = second->commit(credit_batch("w", 2, 2, 1));
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_EQ(fresh.value().last_position, 4);
  EXPECT_EQ(first->read_wallets({"w"}).value().at(0), wallet_state("w", 3, 3));
}

TEST_F(PgStoreTest, AnExpiredRecordIsReplacedOnlyIfItIsTheOneTheWriterSaw) {
  auto store = open_store(database_->url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commit(create_batch("a", "key", 100)).ok());

  CommitBatch wrong = create_batch("b", "key", 90'000);
  wrong.entries[0].replaces_record_created_at_ms = 99;  // not the stored record
  auto refused = store->commit(wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, StoreErrorKind::kConflict);

  CommitBatch right = create_batch("b", "key", 90'000);
  right.entries[0].replaces_record_created_at_ms = 100;
  auto replaced = store->commit(right);
  ASSERT_TRUE(replaced.ok()) << replaced.error().message;
  auto record = store->find_idempotency("key").value();
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->created_at_ms, 90'000);
  EXPECT_EQ(record->position, 2);
}

TEST_F(PgStoreTest, TheSameKeyFromTwoStoresAtOnceCommitsOnce) {
  constexpr int kRounds = 20;
  auto first = open_store(database_->url());
  auto second = open_store(database_->url());
  ASSERT_TRUE(first && second);
  for (int round = 0; round < kRounds; ++round) {
    const std::string key = "key-" + std::to_string(round);
    std::atomic<int> committed{0}, conflicts{0};
    auto attempt = [&](PgStore& store, const std::string& wallet) {
      auto result = store.commit(create_batch(wallet, key));
      if (result.ok()) {
        ++committed;
      } else if (result.error().kind == StoreErrorKind::kConflict) {
        ++conflicts;
      }
    };
    std::thread a(attempt, std::ref(*first), "a-" + std::to_string(round));
    std::thread b(attempt, std::ref(*second), "b-" + std::to_string(round));
    a.join();
    b.join();
    EXPECT_EQ(committed.load(), 1) << "round " << round;
    EXPECT_EQ(conflicts.load(), 1) << "round " << round;
  }
  EXPECT_EQ(first->last_position().value(), kRounds);
}

// The property the read side relies on: at every moment, the committed events hold exactly the
// positions 1..head. Writers on their own connections commit batches of different sizes at the
// same time (and some conflict and roll back); a reader tailing with `position > checkpoint`
// must never see a position other than checkpoint + 1 next.
TEST_F(PgStoreTest, ConcurrentWritersNeverLetAReaderSeeAGap) {
  constexpr int kWriters = 4;
  constexpr int kBatchesPerWriter = 60;
  std::atomic<bool> writers_done{false};
  std::atomic<std::int64_t> expected_events{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto store = open_store(database_->url());
      if (!store) return;
      const std::string own = "own-" + std::to_string(w);
      ASSERT_TRUE(store->commit(create_batch(own)).ok());
      ++expected_events;
      std::int64_t version = 0;
      for (int b = 0; b < kBatchesPerWriter; ++b) {
        const int count = 1 + (b * 7 + w) % 9;
        auto done = store->commit(credit_batch(own, version, version, count));
        ASSERT_TRUE(done.ok()) << done.error().message;
        version += count;
        expected_events += count;
        // Every writer also tries to create the same shared wallet: all but one conflict,
        // and their rolled-back allocations must leave no hole.
        if (b % 10 == 0) {
          auto shared = store->commit(create_batch("shared-" + std::to_string(b)));
          if (shared.ok()) {
            ++expected_events;
          } else {
            EXPECT_EQ(shared.error().kind, StoreErrorKind::kConflict) << shared.error().message;
          }
        }
      }
    });
  }
  auto reader = open_store(database_->url());
  ASSERT_NE(reader, nullptr);
  std::int64_t checkpoint = 0;
  std::int64_t pages = 0;
  auto read_on = [&] {
    auto page = reader->read_events(checkpoint, 37);
    ASSERT_TRUE(page.ok()) << page.error().message;
    for (const StoredEvent& event : page.value()) {
      ASSERT_EQ(event.position, checkpoint + 1) << "a gap or disorder after " << checkpoint;
      checkpoint = event.position;
    }
    ++pages;
  };
  std::thread finisher([&] {
    for (auto& t : writers) t.join();
    writers_done.store(true);
  });
  while (!writers_done.load()) {
    read_on();
    if (::testing::Test::HasFatalFailure()) break;
  }
  finisher.join();
  const std::int64_t head = reader->last_position().value();
  while (checkpoint < head && !::testing::Test::HasFatalFailure()) read_on();
  EXPECT_EQ(checkpoint, expected_events.load());
  EXPECT_EQ(head, expected_events.load());
  EXPECT_GT(pages, 10);

  // And each wallet's versions are contiguous from 0.
  std::map<std::string, std::int64_t> next_version;
  for (const StoredEvent& event : reader->read_events(0, 1'000'000).value()) {
    EXPECT_EQ(event.event.version, next_version[event.event.wallet_id]++) << event.event.wallet_id;
  }
}

// A commit waits for whoever holds log_head, however long, even when the server's default
// lock_timeout would give up: waiting for another instance's commit is contention, not failure.
TEST_F(PgStoreTest, ACommitWaitsForTheLogHeadInsteadOfTimingOut) {
  auto admin = PgConnection::connect(database_->url());
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE(admin.value()
                  ->exec("ALTER DATABASE " + database_->name() + " SET lock_timeout = '10ms'")
                  .ok());
  auto store = open_store(database_->url());  // a new session: gets the 10 ms default
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(admin.value()->exec("BEGIN").ok());
  ASSERT_TRUE(admin.value()->exec("UPDATE log_head SET position = position").ok());
  auto commit = std::async(std::launch::async, [&] { return store->commit(create_batch("a")); });
  EXPECT_EQ(commit.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "the commit did not wait for log_head";
  ASSERT_TRUE(admin.value()->exec("COMMIT").ok());
  auto result = commit.get();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result.value().last_position, 1);
}

TEST_F(PgStoreTest, ALostConnectionIsAnIoError) {
  auto store = open_store(database_->url());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->commit(create_batch("a")).ok());
  auto admin = PgConnection::connect(database_->url());
  ASSERT_TRUE(admin.ok());
  auto killed = admin.value()->exec(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
      " WHERE datname = current_database() AND application_name = 'wallex'"
      " AND pid <> pg_backend_pid()");
  ASSERT_TRUE(killed.ok()) << killed.error().message;
  EXPECT_EQ(killed.value().int64(0, 0), 1);
  auto commit = store->commit(credit_batch("a", 0, 0, 1));
  ASSERT_FALSE(commit.ok());
  EXPECT_EQ(commit.error().kind, StoreErrorKind::kIo) << commit.error().message;
}

class PgMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = PgDatabase::create(/*migrate=*/false);
    ASSERT_NE(database_, nullptr);
    auto connection = PgConnection::connect(database_->url());
    ASSERT_TRUE(connection.ok()) << connection.error().message;
    connection_ = std::move(connection).value();
  }
  std::unique_ptr<PgDatabase> database_;
  std::unique_ptr<PgConnection> connection_;
};

TEST_F(PgMigrationTest, AStoreRefusesAnUnmigratedDatabaseNamingTheCommand) {
  auto status = migration_status(*connection_);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_TRUE(status.value().applied.empty());
  EXPECT_EQ(status.value().pending.size(), pg_migrations().size());
  auto store = PgStore::open(database_->url());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("wallex migrate up"), std::string::npos)
      << store.error().message;
}

TEST_F(PgMigrationTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  constexpr int kMigrators = 4;
  std::atomic<int> applied{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&] {
      auto connection = PgConnection::connect(database_->url());
      if (!connection) {
        ++failed;
        return;
      }
      auto done = migrate_up(*connection.value());
      if (!done) {
        ADD_FAILURE() << done.error().message;
        ++failed;
        return;
      }
      applied += static_cast<int>(done.value().size());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(applied.load(), static_cast<int>(pg_migrations().size()));
  auto status = migration_status(*connection_).value();
  EXPECT_TRUE(status.pending.empty());
  EXPECT_EQ(status.newest_applied, pg_schema_version());
  EXPECT_EQ(status.applied.size(), pg_migrations().size());
  EXPECT_TRUE(PgStore::open(database_->url()).ok());
  EXPECT_TRUE(migrate_up(*connection_).value().empty());  // nothing left to do
}

TEST_F(PgMigrationTest, ANewerSchemaIsRefused) {
  ASSERT_TRUE(migrate_up(*connection_).ok());
  ASSERT_TRUE(connection_
                  ->exec("INSERT INTO wallex_schema_migrations (version, name) VALUES (" +
                         std::to_string(pg_schema_version() + 1) + ", 'from the future')")
                  .ok());
  auto store = PgStore::open(database_->url());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, StoreErrorKind::kSchemaTooNew) << store.error().message;
  auto up = migrate_up(*connection_);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().kind, StoreErrorKind::kSchemaTooNew);
  EXPECT_TRUE(migration_status(*connection_).value().too_new());
}

}  // namespace
}  // namespace wallex::testing
