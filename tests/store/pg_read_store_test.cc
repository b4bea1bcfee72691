// The PostgreSQL read side against the embedded one: the same log projected into both must give
// the same rows and answer every query the same way; a rebuild equals the incremental result; two
// projectors at once (a lease hand-over) never apply an event twice; a read pins one snapshot;
// the lease admits one holder and fails over when its session ends. A real PostgreSQL
// (scripts/with-pg.sh), a fresh database per test.
#include "store/postgres/pg_read_store.h"

#include <gtest/gtest.h>

#include <thread>

#include "pg_database.h"
#include "projection/rebuild.h"
#include "projection/verify.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_lease.h"
#include "store/postgres/pg_shared_read_side.h"
#include "store/postgres/pg_store.h"
#include "unit/projection_fixture.h"

namespace wallex::testing {
namespace {

class PgReadStoreTest : public ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    database_ = PgDatabase::create();
    ASSERT_NE(database_, nullptr);
  }
  void TearDown() override {
    ProjectionFixture::TearDown();
    database_.reset();
  }
  std::unique_ptr<PgReadStore> open_pg() {
    auto opened = PgReadStore::open(database_->url());
    EXPECT_TRUE(opened.ok()) << (opened ? "" : opened.error().message);
    return opened ? std::move(opened).value() : nullptr;
  }
  // Projects the fixture's (SQLite) log into `store` with a runner of its own.
  void project_into(ReadStore& store, RunnerOptions options = {}) {
    ProjectionRunner pg_runner(log(), store, make_projectors(), clock_, options);
    ASSERT_TRUE(pg_runner.open().ok());
    auto done = pg_runner.catch_up();
    ASSERT_TRUE(done.ok()) << done.error().message;
  }
  std::unique_ptr<PgDatabase> database_;
};

TEST_F(PgReadStoreTest, ProjectsTheSameRowsAsTheEmbeddedReadSide) {
  workload(12, 400);
  catch_up();
  auto pg = open_pg();
  ASSERT_NE(pg, nullptr);
  RunnerOptions small;
  small.batch_events_max = 37;  // many batches, savepoints and flushes
  project_into(*pg, small);
  const ReadSideDump expected = dump(read_store());
  EXPECT_GT(expected.entries.size(), 300u);
  EXPECT_EQ(dump(*pg), expected);
}

TEST_F(PgReadStoreTest, AnswersQueriesLikeTheEmbeddedReadSide) {
  workload(8, 300);
  catch_up();
  auto pg = open_pg();
  ASSERT_NE(pg, nullptr);
  project_into(*pg);
  ReadStore& sqlite = read_store();
  const TimestampMs middle = now_ms_ - 700;
  int compared = 0;
  for (const std::optional<std::string>& wallet :
       {std::optional<std::string>(), std::optional<std::string>("w3")}) {
    for (const std::optional<EntryType> type :
         {std::optional<EntryType>(), std::optional<EntryType>(EntryType::kTransferIn)}) {
      for (const std::optional<TimestampMs> start :
           {std::optional<TimestampMs>(), std::optional<TimestampMs>(middle)}) {
        EntryFilter filter;
        filter.wallet_id = wallet;
        filter.type = type;
        filter.start_ms = start;
        filter.limit = 20;
        filter.offset = 3;
        auto a = sqlite.find_entries(filter);
        auto b = pg->find_entries(filter);
        ASSERT_TRUE(a.ok() && b.ok());
        EXPECT_EQ(b.value(), a.value());
        compared += static_cast<int>(a.value().size());
      }
    }
  }
  EXPECT_GT(compared, 50);
  EXPECT_EQ(pg->entries_by_reference("t-5", 10).value(),
            sqlite.entries_by_reference("t-5", 10).value());
  EXPECT_EQ(pg->list_read_wallets("w2", std::string("owner1"), 3).value(),
            sqlite.list_read_wallets("w2", std::string("owner1"), 3).value());
  EXPECT_EQ(pg->wallet_events("w1", 2, 5).value(), sqlite.wallet_events("w1", 2, 5).value());
  EXPECT_EQ(pg->wallet_event_at("w1", middle).value(),
            sqlite.wallet_event_at("w1", middle).value());
  EXPECT_EQ(pg->ledger_wallet("w4").value(), sqlite.ledger_wallet("w4").value());
  EXPECT_EQ(pg->read_wallet("w5").value(), sqlite.read_wallet("w5").value());
  EXPECT_FALSE(pg->read_wallet("nope").value().has_value());
}

TEST_F(PgReadStoreTest, ARebuildEqualsTheIncrementalResultAndSwapsInPlace) {
  workload(10, 250);
  auto pg = open_pg();
  ASSERT_NE(pg, nullptr);
  project_into(*pg);
  const ReadSideDump incremental = dump(*pg);
  auto rebuilt_store = open_pg();
  ASSERT_NE(rebuilt_store, nullptr);
  RebuildOptions options;
  options.transaction_events = 100;
  auto rebuilt = rebuild(log(), *rebuilt_store, clock_, options);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
  EXPECT_EQ(dump(*pg), incremental);  // a fresh reader sees the swapped tables
  // The live projector goes on after the swap: new events land in the new tables.
  credit("w1", "1.25");
  project_into(*pg);
  auto report = verify(log(), pg.get());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report.value().difference_count, 0);
}

TEST_F(PgReadStoreTest, TwoProjectorsAtOnceApplyEveryEventOnce) {
  workload(6, 300);
  auto first = open_pg();
  auto second = open_pg();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto second_log = SqliteEventLog::open(dir_);
  ASSERT_TRUE(second_log.ok());
  RunnerOptions small;
  small.batch_events_max = 11;
  ProjectionRunner a(log(), *first, make_projectors(), clock_, small);
  ProjectionRunner b(*second_log.value(), *second, make_projectors(), clock_, small);
  ASSERT_TRUE(a.open().ok());
  ASSERT_TRUE(b.open().ok());
  std::thread other([&] { EXPECT_TRUE(b.catch_up().ok()); });
  EXPECT_TRUE(a.catch_up().ok());
  other.join();
  // Whichever ran each batch, the result is the single-projector one.
  catch_up();
  EXPECT_EQ(dump(*first), dump(read_store()));
}

TEST_F(PgReadStoreTest, AReadPinsOneSnapshot) {
  workload(3, 10);
  auto pg = open_pg();
  ASSERT_NE(pg, nullptr);
  project_into(*pg);
  auto reader = open_pg();
  ASSERT_TRUE(reader->begin_read().ok());
  const auto before = reader->scan_entries(0, 1000).value().size();
  credit("w0", "3.00");
  project_into(*pg);
  EXPECT_EQ(reader->scan_entries(0, 1000).value().size(), before);
  reader->end_read();
  EXPECT_EQ(reader->scan_entries(0, 1000).value().size(), before + 1);
}

TEST_F(PgReadStoreTest, AStateRowNeverMovesBack) {
  auto pg = open_pg();
  ASSERT_NE(pg, nullptr);
  WalletState w{"w", "o", Money::from_minor(5), 3, 1, 2};
  ASSERT_TRUE(pg->begin_write().ok());
  ASSERT_TRUE(pg->put_read_wallet(w).ok());
  ASSERT_TRUE(pg->commit().ok());
  w.version = 2;
  ASSERT_TRUE(pg->begin_write().ok());
  ASSERT_TRUE(pg->put_read_wallet(w).ok());  // buffered
  auto committed = pg->commit();
  ASSERT_FALSE(committed.ok());
  EXPECT_EQ(committed.error().kind, StoreErrorKind::kCorrupt);
  pg->rollback();
  EXPECT_EQ(pg->read_wallet("w").value()->version, 3);
}

TEST(PgLeaseTest, OneHolderAtATimeAndFailoverWhenItsSessionEnds) {
  auto database = PgDatabase::create();
  ASSERT_NE(database, nullptr);
  auto a = PgLease::open(database->url(), kProjectionLeaseKey, "instance-a");
  auto b = PgLease::open(database->url(), kProjectionLeaseKey, "instance-b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a.value()->try_acquire().value());
  EXPECT_FALSE(b.value()->try_acquire().value());
  EXPECT_TRUE(a.value()->try_acquire().value());  // still held
  EXPECT_EQ(b.value()->holder().value(), std::optional<std::string>("instance-a"));
  // Another key is another lease.
  auto relay = PgLease::open(database->url(), kRelayLeaseKey, "instance-b");
  ASSERT_TRUE(relay.ok());
  EXPECT_TRUE(relay.value()->try_acquire().value());

  // The holder's session is terminated from outside (as when its process dies).
  auto admin = PgConnection::connect(database->url());
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE(admin.value()
                  ->exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'wallex instance-a'")
                  .ok());
  bool taken_over = false;
  for (int i = 0; i < 100 && !taken_over; ++i) {
    taken_over = b.value()->try_acquire().value();
    if (!taken_over) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(taken_over);
  EXPECT_FALSE(a.value()->check());
  EXPECT_FALSE(a.value()->held());
  EXPECT_FALSE(a.value()->try_acquire().ok());  // a lost connection is reported, never "held"
  EXPECT_EQ(b.value()->holder().value(), std::optional<std::string>("instance-b"));
  EXPECT_FALSE(PgLease::open(database->url(), kProjectionLeaseKey, std::string(49, 'x')).ok());
}

// Two instances' read sides on one database: one projects, both see its checkpoints; when the
// projecting one stops (its session ends), the other takes over and projects what came since.
TEST(PgSharedReadSideTest, OneProjectsBothSeeItAndTheOtherTakesOver) {
  auto database = PgDatabase::create();
  ASSERT_NE(database, nullptr);
  auto writer = PgStore::open(database->url());
  ASSERT_TRUE(writer.ok());
  std::int64_t version = -1;
  std::int64_t balance = 0;
  auto commit_credit = [&](std::int64_t cents) {
    CommitBatch batch;
    CommitBatch::Entry entry;
    Event event;
    event.wallet_id = "w";
    event.occurred_at_ms = 1'000 + version + 1;
    if (version < 0) {
      event.type = EventType::kWalletCreated;
      event.owner_id = "o";
    } else {
      event.type = EventType::kWalletCredited;
      event.amount = Money::from_minor(cents);
    }
    event.version = version + 1;
    entry.events = {event};
    batch.entries = {entry};
    if (version >= 0) balance += cents;
    batch.wallets = {WalletWrite{
        WalletState{"w", "o", Money::from_minor(balance), version + 1, 1'000, 1'000 + version + 1},
        version}};
    auto done = writer.value()->commit(batch);
    ASSERT_TRUE(done.ok()) << done.error().message;
    ++version;
  };
  commit_credit(0);
  commit_credit(150);

  ManualClock clock{1'764'000'000'000};
  SharedReadSideOptions options;
  options.lease_retry_interval_ms = 50;
  options.checkpoint_poll_interval_ms = 10;
  options.runner.batch_interval_ms = 10;
  options.runner.poll_interval_ms = 10;
  auto a = std::make_unique<PgSharedReadSide>(database->url(), "a", clock, options);
  auto b = std::make_unique<PgSharedReadSide>(database->url(), "b", clock, options);
  ASSERT_TRUE(a->open().ok());
  ASSERT_TRUE(b->open().ok());
  a->start();
  auto wait_for = [](auto&& condition) {
    for (int i = 0; i < 500 && !condition(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return condition();
  };
  ASSERT_TRUE(wait_for([&] { return a->holds_lease(); }));
  b->start();
  EXPECT_TRUE(wait_for([&] { return b->checkpoint(ProjectorId::kLedger) == 2; }));
  EXPECT_TRUE(wait_for([&] { return b->holder() == "a"; }));
  EXPECT_FALSE(b->holds_lease());

  a->stop();  // ends a's lease session
  commit_credit(25);
  EXPECT_TRUE(wait_for([&] { return b->holds_lease(); }));
  EXPECT_TRUE(wait_for([&] { return b->checkpoint(ProjectorId::kLedger) == 3; }));
  for (const ProjectorStatus& status : b->statuses()) {
    EXPECT_EQ(status.position, 3);
    EXPECT_EQ(status.positions_behind, 0);
  }
  b->stop();
  auto reader = PgReadStore::open(database->url());
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader.value()->ledger_wallet("w").value()->balance, Money::from_minor(175));
  EXPECT_EQ(reader.value()->scan_entries(0, 10).value().size(), 2u);
}

}  // namespace
}  // namespace wallex::testing
