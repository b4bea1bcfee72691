// The projector framework (batches, checkpoints, failures, lag), rebuild and verify, on a real
// embedded store.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "projection/rebuild.h"
#include "projection/verify.h"
#include "projection_fixture.h"

namespace wallex::testing {
namespace {

// Wraps a projector; fails every event at `fail_at` while `failing` is set.
class FlakyProjector final : public Projector {
 public:
  FlakyProjector(std::unique_ptr<Projector> inner, std::int64_t fail_at, bool* failing)
      : inner_(std::move(inner)), fail_at_(fail_at), failing_(failing) {}
  ProjectorId id() const override { return inner_->id(); }
  Status<StoreError> apply(const LoggedEvent& event, ReadStore& store) override {
    if (*failing_ && event.position == fail_at_) {
      return fail(StoreError{StoreErrorKind::kOther, "injected failure"});
    }
    return inner_->apply(event, store);
  }
  Status<StoreError> flush(ReadStore& store) override { return inner_->flush(store); }
  void reset() override { inner_->reset(); }

 private:
  std::unique_ptr<Projector> inner_;
  std::int64_t fail_at_;
  bool* failing_;
};

RunnerOptions fast_retries(std::size_t batch) {
  RunnerOptions options;
  options.batch_events_max = batch;
  options.retry_delay_first_ms = 0;
  options.retry_delay_max_ms = 0;
  return options;
}

ProjectorStatus status_of(const ProjectionRunner& runner, ProjectorId id) {
  for (const ProjectorStatus& s : runner.statuses()) {
    if (s.id == id) return s;
  }
  ADD_FAILURE() << "no status";
  return {};
}

using RunnerTest = ProjectionFixture;

// The writer commits batches before their fsync (SqliteStore is pipelined): in the serving
// process the log is read up to the durable head only, so nothing a power loss could still take
// back reaches the read side or Kafka.
TEST_F(RunnerTest, TheServingProcessReadsTheLogOnlyUpToTheDurableHead) {
  create("a", "10");
  const std::int64_t durable = credit("a", "1");
  write_only_ = true;
  const std::int64_t written = credit("a", "2");
  ASSERT_EQ(written, durable + 1);
  std::atomic<std::int64_t> head{durable};
  auto opened = SqliteEventLog::open(dir_, &head);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  SqliteEventLog& bounded = *opened.value();
  EXPECT_EQ(bounded.last_position().value(), durable);
  auto read = bounded.read_events(0, 100);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read.value().size(), static_cast<std::size_t>(durable));
  EXPECT_EQ(read.value().back().position, durable);
  EXPECT_TRUE(bounded.read_events(durable, 100).value().empty());
  // A projector on that log stops there too.
  ProjectionRunner projector(bounded, read_store(), make_projectors(), clock_, RunnerOptions{});
  ASSERT_TRUE(projector.open().ok());
  ASSERT_TRUE(projector.catch_up().ok());
  for (const Checkpoint& checkpoint : read_store().checkpoints().value()) {
    EXPECT_EQ(checkpoint.position, durable);
  }

  ASSERT_TRUE(store_->sync().ok());
  head.store(written);
  EXPECT_EQ(bounded.last_position().value(), written);
  EXPECT_EQ(bounded.read_events(durable, 100).value().size(), 1u);
  // A reader in a process of its own (no bound) syncs the WAL itself, then reads all of it.
  EXPECT_EQ(log().read_events(0, 100).value().size(), static_cast<std::size_t>(written));
}

// The projector reads batch after batch into one buffer: whatever it held before, it then holds
// exactly what read_events returns, and nothing at the end of the log.
TEST_F(RunnerTest, ReadingIntoAReusedBufferGivesWhatAFreshReadGives) {
  create("a", "10");
  create("b", "20");
  for (int i = 0; i < 5; ++i) credit("a", "1");
  std::vector<LoggedEvent> buffer;
  ASSERT_TRUE(log().read_events_into(0, 100, buffer).ok());
  const std::vector<LoggedEvent> all = log().read_events(0, 100).value();
  ASSERT_EQ(buffer.size(), all.size());
  ASSERT_GT(all.size(), 3u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(static_cast<const StoredEvent&>(buffer[i]), static_cast<const StoredEvent&>(all[i]));
    EXPECT_EQ(buffer[i].data_json, all[i].data_json);
    EXPECT_EQ(buffer[i].metadata_json, all[i].metadata_json);
  }
  ASSERT_TRUE(log().read_events_into(2, 3, buffer).ok());
  ASSERT_EQ(buffer.size(), 3u);
  EXPECT_EQ(buffer.front().position, 3);
  EXPECT_EQ(buffer.back().position, 5);
  EXPECT_EQ(buffer.back().metadata_json, all[4].metadata_json);
  ASSERT_TRUE(log().read_events_into(all.back().position, 100, buffer).ok());
  EXPECT_TRUE(buffer.empty());
}

TEST_F(RunnerTest, SmallBatchesApplyEveryEventOnce) {
  workload(6, 120);
  const std::int64_t head = log().last_position().value();
  ProjectionRunner& r = runner(fast_retries(7));
  catch_up();
  for (const ProjectorId id : kAllProjectors) EXPECT_EQ(r.checkpoint(id), head);
  const ReadSideDump small_batches = dump(read_store());
  EXPECT_EQ(small_batches.wallet_events.size(), static_cast<std::size_t>(head));
  auto rebuilt = rebuild(log(), read_store(), clock_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
  EXPECT_EQ(dump(read_store()), small_batches);
}

// The server's read store holds entries and event rows back and writes them 16 to a statement
// (group_live_rows): in batches that leave groups part full, and in one batch of more rows than
// may wait, the read side is the one a rebuild (rows one by one) makes.
TEST_F(RunnerTest, RowsWrittenInGroupsAreTheRowsWrittenOneByOne) {
  for (const std::size_t batch : {std::size_t{37}, std::size_t{100'000}}) {
    SCOPED_TRACE("batches of " + std::to_string(batch));
    runner_.reset();
    read_.reset();
    std::filesystem::remove(SqliteReadStore::path_in(dir_));
    std::filesystem::remove(SqliteReadStore::path_in(dir_) + "-wal");
    if (batch == 37) workload(10, 4'000);
    const std::int64_t head = log().last_position().value();
    ASSERT_GT(static_cast<std::size_t>(head), SqliteReadStore::kHeldRowsMax);
    read_store().group_live_rows(true);
    ProjectionRunner& r = runner(fast_retries(batch));
    catch_up();
    for (const ProjectorId id : kAllProjectors) EXPECT_EQ(r.checkpoint(id), head);
    const ReadSideDump grouped = dump(read_store());
    EXPECT_EQ(grouped.wallet_events.size(), static_cast<std::size_t>(head));
    auto report = verify(log(), &read_store());
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report.value().ok()) << report.value().differences.front();
    runner_.reset();
    read_store().group_live_rows(false);
    auto rebuilt = rebuild(log(), read_store(), clock_);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
    EXPECT_EQ(dump(read_store()), grouped);
  }
}

// A row that fails when its group is written (here a ledger entry whose position is taken) is
// its projector's failure, as a row inserted at once would be: the ledger's batch rolls back and
// it is retried, the other projectors go on.
TEST_F(RunnerTest, ARowThatFailsInItsGroupFailsItsProjectorOnly) {
  workload(4, 60);
  const std::int64_t head = log().last_position().value();
  read_store().group_live_rows(true);  // creates read.db
  sql("read.db",
      "INSERT INTO ledger_entries (position, wallet_id, wallet_key, version, type,"
      " amount_minor, balance_before_minor, balance_after_minor, reference_id,"
      " created_at_ms, reference_hash) VALUES (" +
          std::to_string(head - 3) + ", 'x', 0, 1, 'CREDIT', 1, 0, 1, 'x:1', 0, 0)");
  ProjectionRunner& r = runner(fast_retries(1'000));
  ASSERT_TRUE(r.run_once().ok());
  EXPECT_EQ(r.checkpoint(ProjectorId::kReadModel), head);
  EXPECT_EQ(r.checkpoint(ProjectorId::kWalletEvents), head);
  EXPECT_EQ(r.checkpoint(ProjectorId::kLedger), 0);
  const ProjectorStatus ledger = status_of(r, ProjectorId::kLedger);
  EXPECT_EQ(ledger.consecutive_failures, 1);
  EXPECT_NE(ledger.last_error.find("ledger entries"), std::string::npos) << ledger.last_error;
  // Nothing of the failed batch stayed: only the row put there by hand.
  EXPECT_EQ(read_store().scan_entries(0, 1'000).value().size(), 1U);
  EXPECT_EQ(dump(read_store()).wallet_events.size(), static_cast<std::size_t>(head));
}

TEST_F(RunnerTest, NumberingTheWalletsAfreshKeepsEveryProjectionExact) {
  // At most two numbered wallets: the numbering starts over after nearly every batch, and the
  // projectors' caches with it; a cache that kept its slots would mix up wallets.
  workload(6, 120);
  RunnerOptions options = fast_retries(7);
  options.wallet_slots_max = 2;
  runner(options);
  catch_up();
  const ReadSideDump renumbered = dump(read_store());
  auto rebuilt = rebuild(log(), read_store(), clock_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
  EXPECT_EQ(dump(read_store()), renumbered);
}

TEST_F(RunnerTest, ARestartResumesFromTheCheckpointsWithoutDoubling) {
  workload(4, 30);
  catch_up();
  const ReadSideDump before = dump(read_store());
  runner_.reset();  // a restart: a new runner on the same files
  workload(0, 0);
  credit("w1", "3");
  catch_up();
  const ReadSideDump after = dump(read_store());
  EXPECT_EQ(after.entries.size(), before.entries.size() + 1);
  EXPECT_EQ(after.wallet_events.size(), before.wallet_events.size() + 1);
  auto report = verify(log(), &read_store());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report.value().ok()) << report.value().differences.front();
}

TEST_F(RunnerTest, AFailingProjectorIsRetriedThenStuckWhileTheOthersGoOn) {
  workload(3, 20);
  const std::int64_t fail_at = 10;
  bool failing = true;
  std::vector<std::unique_ptr<Projector>> projectors;
  projectors.push_back(std::make_unique<ReadModelProjector>());
  projectors.push_back(
      std::make_unique<FlakyProjector>(std::make_unique<LedgerProjector>(), fail_at, &failing));
  projectors.push_back(std::make_unique<WalletEventsProjector>());
  ProjectionRunner& r = runner(fast_retries(1000), std::move(projectors));
  const std::int64_t head = log().last_position().value();

  ASSERT_TRUE(r.run_once().ok());
  EXPECT_EQ(r.checkpoint(ProjectorId::kReadModel), head);
  EXPECT_EQ(r.checkpoint(ProjectorId::kWalletEvents), head);
  EXPECT_EQ(r.checkpoint(ProjectorId::kLedger), 0) << "its whole batch rolled back";
  EXPECT_TRUE(read_store().scan_entries(0, 1000).value().empty());
  ProjectorStatus ledger = status_of(r, ProjectorId::kLedger);
  EXPECT_FALSE(ledger.stuck);
  EXPECT_EQ(ledger.consecutive_failures, 1);
  EXPECT_EQ(ledger.positions_behind, head);
  EXPECT_NE(ledger.last_error.find("injected failure"), std::string::npos);

  ASSERT_TRUE(r.run_once().ok());
  ASSERT_TRUE(r.run_once().ok());
  ledger = status_of(r, ProjectorId::kLedger);
  EXPECT_TRUE(ledger.stuck);
  EXPECT_EQ(ledger.consecutive_failures, 3);
  EXPECT_FALSE(status_of(r, ProjectorId::kReadModel).stuck);

  failing = false;
  ASSERT_TRUE(r.run_once().ok());
  ledger = status_of(r, ProjectorId::kLedger);
  EXPECT_FALSE(ledger.stuck);
  EXPECT_TRUE(ledger.last_error.empty());
  EXPECT_EQ(r.checkpoint(ProjectorId::kLedger), head);
  auto report = verify(log(), &read_store());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report.value().ok()) << report.value().differences.front();
}

TEST_F(RunnerTest, AStuckProjectorThatABatchSkipsStaysStuck) {
  workload(3, 40);
  const std::int64_t head = log().last_position().value();
  ASSERT_GE(head, 30);
  bool ledger_failing = true;
  bool read_model_failing = true;
  std::vector<std::unique_ptr<Projector>> projectors;
  projectors.push_back(std::make_unique<FlakyProjector>(std::make_unique<ReadModelProjector>(), 18,
                                                        &read_model_failing));
  projectors.push_back(
      std::make_unique<FlakyProjector>(std::make_unique<LedgerProjector>(), 1, &ledger_failing));
  projectors.push_back(std::make_unique<WalletEventsProjector>());
  RunnerOptions options = fast_retries(5);
  options.failures_before_stuck = 1;
  options.retry_delay_first_ms = 3'000;  // neither failed projector is retried before the sleep
  options.retry_delay_max_ms = 3'000;
  ProjectionRunner& r = runner(options, std::move(projectors));

  // The ledger fails at once; the read model goes ahead in 5-event batches until position 18.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(r.run_once().ok());
  EXPECT_TRUE(status_of(r, ProjectorId::kLedger).stuck);
  EXPECT_EQ(r.checkpoint(ProjectorId::kLedger), 0);
  ProjectorStatus read_model = status_of(r, ProjectorId::kReadModel);
  ASSERT_TRUE(read_model.stuck);
  EXPECT_EQ(r.checkpoint(ProjectorId::kReadModel), 15);
  EXPECT_EQ(r.checkpoint(ProjectorId::kWalletEvents), head);

  // Both are due again. The ledger recovers with a batch from position 0, which ends before the
  // read model's checkpoint: the read model applied nothing, so it is still stuck.
  ledger_failing = false;
  std::this_thread::sleep_for(std::chrono::milliseconds(3'200));
  ASSERT_TRUE(r.run_once().ok());
  EXPECT_FALSE(status_of(r, ProjectorId::kLedger).stuck);
  EXPECT_EQ(r.checkpoint(ProjectorId::kLedger), 5);
  read_model = status_of(r, ProjectorId::kReadModel);
  EXPECT_TRUE(read_model.stuck);
  EXPECT_EQ(read_model.consecutive_failures, 1);
  EXPECT_NE(read_model.last_error.find("injected failure"), std::string::npos);
}

TEST_F(RunnerTest, LagIsReportedInPositionsAndTime) {
  create("a", "1");
  credit("a", "1");
  credit("a", "1");
  ProjectionRunner& r = runner(fast_retries(1));
  r.notify_head(4);
  ProjectorStatus s = status_of(r, ProjectorId::kReadModel);
  EXPECT_EQ(s.head, 4);
  EXPECT_EQ(s.positions_behind, 4);
  ASSERT_TRUE(r.run_once().ok());  // applies position 1 only
  clock_.advance_ms(1'000'000);
  s = status_of(r, ProjectorId::kReadModel);
  EXPECT_EQ(s.position, 1);
  EXPECT_EQ(s.positions_behind, 3);
  // The oldest event not applied (position 2) happened at now_ms_ - 14 on the test's timeline.
  const auto second = log().read_events(1, 1).value().at(0);
  EXPECT_EQ(s.ms_behind, clock_.now_ms() - second.event.occurred_at_ms);
  catch_up();
  s = status_of(r, ProjectorId::kReadModel);
  EXPECT_EQ(s.positions_behind, 0);
  EXPECT_EQ(s.ms_behind, 0);
}

// Commits come far more often than the thread's batches. notify_head() wakes a thread that
// sleeps until there is news; while it gathers after a batch, a commit must not wake it (it
// woke, saw it was still gathering and slept again: a context switch in and out per commit).
TEST_F(RunnerTest, CommitsWhileItGathersDoNotWakeTheThread) {
  create("a", "1");
  RunnerOptions options;
  options.poll_interval_ms = 60'000;  // only notify_head() wakes it within the test
  options.batch_interval_ms = 3'000;
  ProjectionRunner& r = runner(options);
  auto applied_within = [&r](std::int64_t position, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (r.checkpoint(ProjectorId::kReadModel) < position) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  };
  r.start();
  // Asleep until there is news: one notify_head() and the events are applied at once.
  std::int64_t head = log().last_position().value();
  r.notify_head(head);
  ASSERT_TRUE(applied_within(head, std::chrono::milliseconds(2'000)));

  // Now it gathers for 3 s after that batch: thirty commits, each announced.
  const auto gathering_since = std::chrono::steady_clock::now();
  const std::uint64_t checks_before = r.wait_checks();
  for (int i = 0; i < 30; ++i) {
    head = credit("a", "1");
    r.notify_head(head);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const std::uint64_t checks = r.wait_checks() - checks_before;
  ASSERT_LT(std::chrono::steady_clock::now() - gathering_since, std::chrono::milliseconds(2'500))
      << "the commits took longer than the gathering; the count below would mean nothing";
  EXPECT_LE(checks, 2u) << "woken by commits while gathering";
  EXPECT_LT(r.checkpoint(ProjectorId::kReadModel), head);
  // At the end of the gathering, one batch takes them all.
  EXPECT_TRUE(applied_within(head, std::chrono::milliseconds(6'000)));
  r.stop();
}

TEST_F(RunnerTest, ACheckpointMovedUnderneathIsFollowed) {
  workload(3, 10);
  catch_up();
  // Someone (a rebuild) replaced the tables and checkpoints while this runner was running.
  for (int i = 0; i < 5; ++i) credit("w0", "1");
  auto rebuilt = rebuild(log(), read_store(), clock_);
  ASSERT_TRUE(rebuilt.ok());
  credit("w0", "1");
  catch_up();
  const std::int64_t head = log().last_position().value();
  for (const ProjectorId id : kAllProjectors) EXPECT_EQ(runner().checkpoint(id), head);
  auto report = verify(log(), &read_store());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report.value().ok()) << report.value().differences.front();
}

TEST_F(RunnerTest, AReadSideAheadOfTheLogIsReportedStuck) {
  workload(2, 5);
  catch_up();
  sql("read.db", "UPDATE checkpoints SET position = position + 100 WHERE projector = 'ledger'");
  runner_.reset();
  ProjectionRunner& r = runner(fast_retries(100));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.run_once().ok());
  const ProjectorStatus ledger = status_of(r, ProjectorId::kLedger);
  EXPECT_TRUE(ledger.stuck);
  EXPECT_NE(ledger.last_error.find("does not belong to this store"), std::string::npos);
}

using RebuildTest = ProjectionFixture;

TEST_F(RebuildTest, EqualsTheIncrementalProjection) {
  workload(10, 300);
  catch_up();
  const ReadSideDump incremental = dump(read_store());
  std::vector<RebuildProgress> progress;
  RebuildOptions options;
  options.read_batch_events = 50;
  options.transaction_events = 120;
  options.on_progress = [&](const RebuildProgress& p) { progress.push_back(p); };
  auto rebuilt = rebuild(log(), read_store(), clock_, options);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
  EXPECT_EQ(rebuilt.value().events, log().last_position().value());
  EXPECT_EQ(rebuilt.value().wallets, 10);
  EXPECT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().events, rebuilt.value().events);
  EXPECT_EQ(dump(read_store()), incremental);
}

TEST_F(RebuildTest, RepairsADamagedReadSideAndCanRunTwice) {
  workload(5, 50);
  catch_up();
  const ReadSideDump good = dump(read_store());
  sql("read.db",
      "DELETE FROM ledger_entries WHERE position = 12; UPDATE read_wallets SET balance_minor = 1");
  EXPECT_NE(dump(read_store()), good);
  ASSERT_TRUE(rebuild(log(), read_store(), clock_).ok());
  ASSERT_TRUE(rebuild(log(), read_store(), clock_).ok());
  EXPECT_EQ(dump(read_store()), good);
}

TEST_F(RebuildTest, BesideARunningServerSwapsTablesInPlace) {
  workload(6, 80);
  catch_up();
  const ReadSideDump incremental = dump(read_store());
  // Another connection (a server's query thread) keeps read.db in WAL mode: no file swap.
  auto other = SqliteReadStore::open(dir_, SqliteReadStore::Access::kReadOnly);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(rebuild(log(), read_store(), clock_).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/read.db.rebuild"));
  EXPECT_EQ(dump(read_store()), incremental);
  EXPECT_EQ(dump(*other.value()), incremental) << "the other connection sees the swapped tables";
  credit("w1", "1");
  catch_up();
  auto report = verify(log(), other.value().get());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report.value().ok()) << report.value().differences.front();
}

TEST_F(RebuildTest, OfAnEmptyLogLeavesEmptyTables) {
  auto rebuilt = rebuild(log(), read_store(), clock_);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(rebuilt.value().events, 0);
  const ReadSideDump empty = dump(read_store());
  EXPECT_TRUE(empty.entries.empty());
  EXPECT_EQ(empty.checkpoints.size(), kProjectorCount);
}

class VerifyTest : public ProjectionFixture {
 protected:
  VerifyReport verify_now() {
    auto report = verify(log(), &read_store());
    EXPECT_TRUE(report.ok()) << report.error().message;
    return report.ok() ? report.value() : VerifyReport{};
  }
  static bool mentions(const VerifyReport& report, std::string_view text) {
    for (const std::string& line : report.differences) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
};

TEST_F(VerifyTest, PassesOnAHealthyStore) {
  workload(10, 200);
  catch_up();
  const VerifyReport report = verify_now();
  EXPECT_TRUE(report.ok()) << report.differences.front();
  EXPECT_FALSE(report.summary.empty());
}

TEST_F(VerifyTest, ReportsProjectionsBehindWithoutFailing) {
  workload(4, 20);
  catch_up();
  workload(0, 0);
  credit("w0", "1");
  credit("w1", "2");
  const VerifyReport report = verify_now();
  EXPECT_TRUE(report.ok()) << report.differences.front();
  bool noted = false;
  for (const std::string& line : report.summary)
    noted = noted || line.find("behind") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(VerifyTest, ADamagedEntryPositionIsAnErrorNotACrash) {
  workload(2, 10);
  catch_up();
  sql("read.db",
      "UPDATE ledger_entries SET position = 0 WHERE position = "
      "(SELECT MIN(position) FROM ledger_entries)");
  // Reading it back reports the damage (the HTTP layer answers 503) instead of aborting.
  auto entries = read_store().scan_entries(-1, 1000);
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(entries.error().message.find("position must be positive"), std::string::npos);
}

TEST_F(VerifyTest, FindsAWrongLedgerAmount) {
  workload(4, 30);
  catch_up();
  sql("read.db",
      "UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE position = "
      "(SELECT MAX(position) FROM ledger_entries)");
  const VerifyReport report = verify_now();
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(mentions(report, "amount is")) << report.differences.front();
}

TEST_F(VerifyTest, FindsAMissingAndADoubledEntry) {
  workload(4, 30);
  catch_up();
  // The copy at a position the log does not have: with its metadata left to the log (NULL, as
  // the projector writes it) no reader can complete it, and verify stops there, naming it.
  const std::string doubled =
      "INSERT INTO ledger_entries (position, wallet_id, wallet_key, version, type, amount_minor,"
      " balance_before_minor, balance_after_minor, description, reference_id, related_wallet_id,"
      " metadata, created_at_ms, reference_hash) SELECT position + 100000, wallet_id, wallet_key,"
      " version, type, amount_minor, balance_before_minor, balance_after_minor, description,"
      " reference_id, related_wallet_id, $metadata, created_at_ms, reference_hash"
      " FROM ledger_entries WHERE position = 7;";
  const auto with_metadata = [&](const std::string& metadata) {
    std::string statement = doubled;
    statement.replace(statement.find("$metadata"), 9, metadata);
    return statement;
  };
  sql("read.db", with_metadata("metadata"));
  auto stopped = verify(log(), &read_store());
  ASSERT_FALSE(stopped.ok());
  EXPECT_NE(stopped.error().message.find("ledger entry at position 100007: not in the log"),
            std::string::npos)
      << stopped.error().message;
  // With metadata of its own, every difference is listed.
  sql("read.db", "DELETE FROM ledger_entries WHERE position = 100007;" + with_metadata("'{}'") +
                     "DELETE FROM ledger_entries WHERE position = 5;");
  const VerifyReport report = verify_now();
  EXPECT_EQ(report.difference_count, 4);
  EXPECT_TRUE(mentions(report, "no entry for the event at position 5"));
  EXPECT_TRUE(mentions(report, "entry at position 100007 is beyond"));
  EXPECT_TRUE(mentions(report, "ledger entry at position 100007 has no key row"));
  EXPECT_TRUE(mentions(report, ", 5) matches no entry"));
}

TEST_F(VerifyTest, AReadSideOfAnOlderSchemaIsReplacedAndCaughtUp) {
  workload(4, 30);
  catch_up();
  runner_.reset();
  read_.reset();
  // Version 3 (4 and 5 are moved in place: EventCopyDocumentsTest.ASchema4ReadSideIsMovedInPlace,
  // ASchema5ReadSideGetsItsReferenceKeysRecomputed).
  static_assert(kReadSchemaVersion == 6);
  sql("read.db", "PRAGMA user_version = 3");
  // Read-only (queries, verify) refuses it; read-write (the projector, rebuild) starts afresh.
  auto read_only = SqliteReadStore::open(dir_, SqliteReadStore::Access::kReadOnly);
  ASSERT_FALSE(read_only.ok());
  EXPECT_EQ(read_only.error().kind, StoreErrorKind::kSchemaTooOld);
  auto checkpoints = read_store().checkpoints();
  ASSERT_TRUE(checkpoints.ok());
  for (const Checkpoint& checkpoint : checkpoints.value()) EXPECT_EQ(checkpoint.position, 0);
  catch_up();
  const VerifyReport report = verify_now();
  EXPECT_TRUE(report.ok()) << (report.differences.empty() ? "" : report.differences.front());
}

TEST_F(VerifyTest, FindsAnIndexThatDoesNotMatchItsTable) {
  workload(4, 30);
  catch_up();
  runner_.reset();
  read_.reset();
  // The index's definition now says amount_minor while its B-tree holds created_at_ms: only
  // SQLite's own integrity check can see that (every query through it would silently misfind).
  sql("read.db",
      "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX"
      " ledger_entries_by_time ON ledger_entries (amount_minor)' WHERE name ="
      " 'ledger_entries_by_time'; PRAGMA writable_schema = OFF;");
  const VerifyReport report = verify_now();
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(mentions(report, "read.db integrity_check:"))
      << (report.differences.empty() ? "" : report.differences.front());
}

TEST_F(VerifyTest, FindsAReferenceHashThatDoesNotMatch) {
  // A wrong hash hides an entry from GET /ledger/transactions/{referenceId}: verify must see it.
  workload(4, 30);
  catch_up();
  sql("read.db",
      "UPDATE ledger_entries SET reference_hash = reference_hash + 1 WHERE position = 7");
  const VerifyReport report = verify_now();
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(mentions(report, "ledger entry at position 7 has a reference hash that does not"))
      << (report.differences.empty() ? "" : report.differences.front());
}

TEST_F(VerifyTest, FindsAWrongWriteModel) {
  // A snapshot with every commit: the wallets table holds every wallet as the log leaves it.
  SqliteStore::OpenOptions each_commit;
  each_commit.snapshot_events_max = 1;
  reopen_store(each_commit);
  workload(4, 30);
  catch_up();
  sql("wallex.db", "UPDATE wallets SET balance_minor = balance_minor + 1 WHERE id = 'w2'");
  const VerifyReport report = verify_now();
  EXPECT_TRUE(mentions(report, "write model: wallet w2: balance"));
  EXPECT_TRUE(mentions(report, "money: write-model balances"));
}

TEST_F(VerifyTest, FindsAWrongReadModelAndEventCopy) {
  workload(4, 30);
  catch_up();
  sql("read.db",
      "UPDATE read_wallets SET version = version + 1 WHERE id = 'w3';"
      "UPDATE wallet_events SET data = '{}' WHERE position = 3");
  const VerifyReport report = verify_now();
  EXPECT_TRUE(mentions(report, "readModel: wallet w3: version"));
  EXPECT_TRUE(mentions(report, "walletEvents: position 3: data"));
}

TEST_F(VerifyTest, FindsADamagedKeyRow) {
  workload(4, 30);
  catch_up();
  sql("read.db",
      "UPDATE ledger_keys SET created_at_ms = created_at_ms - 1 WHERE position = 7;"
      "DELETE FROM wallet_event_keys WHERE position = 3");
  const VerifyReport report = verify_now();
  EXPECT_TRUE(mentions(report, "ledger entry at position 7 has no key row"));
  EXPECT_TRUE(mentions(report, "wallet event at position 3 has no key row"));
}

TEST_F(VerifyTest, FindsABrokenLog) {
  create("a", "10");
  create("b", "0");
  transfer("a", "b", "4", "t1");
  catch_up();
  // The destination half of the transfer disappears from the log.
  sql("wallex.db", "DELETE FROM events WHERE position = (SELECT MAX(position) FROM events)");
  const VerifyReport report = verify_now();
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(mentions(report, "has no WalletTransferCompleted"));
}

TEST_F(VerifyTest, WithoutAReadSideFails) {
  create("a", "1");
  auto report = verify(log(), nullptr);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report.value().ok());
}

// The per-wallet event copy of a data directory leaves each event's documents to the log beside
// read.db, and the ledger each entry's metadata, and reads them back from it by position; a read
// side of its own keeps them.
class EventCopyDocumentsTest : public ProjectionFixture {
 protected:
  // A workload projected, the runner and read.db closed: read.db's entries and the ledger's
  // checkpoint.
  std::pair<std::int64_t, std::int64_t> project_and_close() {
    workload(4, 30);
    catch_up();
    runner_.reset();
    read_.reset();
    return {count("read.db", "SELECT count(*) FROM ledger_entries"),
            count("read.db", "SELECT position FROM checkpoints WHERE projector = 'ledger'")};
  }
  std::int64_t count(const std::string& file, const std::string& query) {
    sqlite3* db = nullptr;
    const std::string path = (std::filesystem::path(dir_) / file).string();
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, query.c_str(), -1, &statement, nullptr), SQLITE_OK);
    std::int64_t value = -1;
    if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
  }
  // Every event of the log against its copy in `store`, documents included.
  void expect_copies_of_the_log(ReadStore& store) {
    auto logged = log().read_events(0, 100'000);
    ASSERT_TRUE(logged.ok()) << logged.error().message;
    auto copied = store.scan_wallet_events(0, 100'000);
    ASSERT_TRUE(copied.ok()) << copied.error().message;
    ASSERT_EQ(copied.value().size(), logged.value().size());
    for (std::size_t i = 0; i < copied.value().size(); ++i) {
      const WalletEventRow& row = copied.value()[i];
      const LoggedEvent& event = logged.value()[i];
      EXPECT_EQ(row.position, event.position);
      EXPECT_EQ(row.data, event.data_json) << "position " << row.position;
      EXPECT_EQ(row.metadata, event.metadata_json) << "position " << row.position;
    }
    // One wallet's history: positions spread over the log (read one by one, where a scan's
    // dense run is read as a range).
    const std::string& wallet_id = logged.value().front().event.wallet_id;
    std::vector<const LoggedEvent*> of_wallet;
    for (const LoggedEvent& event : logged.value()) {
      if (event.event.wallet_id == wallet_id) of_wallet.push_back(&event);
    }
    ASSERT_GT(of_wallet.back()->position - of_wallet.front()->position,
              2 * static_cast<std::int64_t>(of_wallet.size()));
    auto history = store.wallet_events(wallet_id, 0, 1'000);
    ASSERT_TRUE(history.ok()) << history.error().message;
    ASSERT_EQ(history.value().size(), of_wallet.size());
    for (std::size_t i = 0; i < of_wallet.size(); ++i) {
      EXPECT_EQ(history.value()[i].position, of_wallet[i]->position);
      EXPECT_EQ(history.value()[i].data, of_wallet[i]->data_json);
      EXPECT_EQ(history.value()[i].metadata, of_wallet[i]->metadata_json);
    }
    expect_entries_of_the_log(store, logged.value(), of_wallet);
  }
  // The ledger entries: every one in a scan (a range read), one wallet's newest first (one read
  // each), and a transfer's two by their reference.
  void expect_entries_of_the_log(ReadStore& store, const std::vector<LoggedEvent>& logged,
                                 const std::vector<const LoggedEvent*>& of_wallet) {
    std::map<std::int64_t, const LoggedEvent*> by_position;
    for (const LoggedEvent& event : logged) by_position[event.position] = &event;
    const auto expect_metadata = [&](const std::vector<LedgerEntry>& entries) {
      for (const LedgerEntry& entry : entries) {
        ASSERT_TRUE(by_position.contains(entry.position)) << entry.position;
        EXPECT_EQ(entry.metadata, by_position[entry.position]->metadata_json)
            << "position " << entry.position;
      }
    };
    auto scanned = store.scan_entries(0, 100'000);
    ASSERT_TRUE(scanned.ok()) << scanned.error().message;
    // Every event but the wallets' creations has an entry.
    std::size_t creations = 0;
    for (const LoggedEvent& event : logged) {
      if (event.event.type == EventType::kWalletCreated) ++creations;
    }
    ASSERT_EQ(scanned.value().size(), logged.size() - creations);
    expect_metadata(scanned.value());
    EntryFilter filter;
    filter.wallet_id = of_wallet.front()->event.wallet_id;
    filter.limit = 1'000;
    auto of_one = store.find_entries(filter);
    ASSERT_TRUE(of_one.ok()) << of_one.error().message;
    ASSERT_EQ(of_one.value().size(), of_wallet.size() - 1);
    expect_metadata(of_one.value());
    const auto transfer = std::find_if(scanned.value().begin(), scanned.value().end(),
                                       [](const LedgerEntry& e) { return e.related_wallet_id; });
    ASSERT_NE(transfer, scanned.value().end());
    auto referenced = store.entries_by_reference(transfer->reference_id, 10);
    ASSERT_TRUE(referenced.ok()) << referenced.error().message;
    ASSERT_EQ(referenced.value().size(), 2u);
    expect_metadata(referenced.value());
  }
};

TEST_F(EventCopyDocumentsTest, AreReadFromTheLogBesideReadDb) {
  workload(4, 30);
  catch_up();
  EXPECT_GT(count("read.db", "SELECT count(*) FROM wallet_events"), 30);
  const std::string with_documents =
      "SELECT count(*) FROM wallet_events WHERE data IS NOT NULL OR metadata IS NOT NULL";
  EXPECT_EQ(count("read.db", with_documents), 0);
  EXPECT_GT(count("read.db", "SELECT count(*) FROM ledger_entries"), 30);
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM ledger_entries WHERE metadata IS NOT NULL"), 0);
  expect_copies_of_the_log(read_store());
  // A second connection (the server's queries) reads them the same way.
  auto queries = SqliteReadStore::open(dir_, SqliteReadStore::Access::kReadOnly);
  ASSERT_TRUE(queries.ok()) << queries.error().message;
  expect_copies_of_the_log(*queries.value());
}

// A read.db of schema 4 (the ledger's metadata stored, NOT NULL) keeps its rows and checkpoints:
// only the constraint goes, and the entries projected from then on leave their metadata to the log.
TEST_F(EventCopyDocumentsTest, ASchema4ReadSideIsMovedInPlace) {
  const auto [entries, checkpoint] = project_and_close();
  ASSERT_GT(entries, 30);
  ASSERT_GT(checkpoint, 0);
  // What version 4 wrote: every entry with the log's metadata, and the column NOT NULL.
  const std::string log_path = (std::filesystem::path(dir_) / "wallex.db").string();
  sql("read.db", "ATTACH '" + log_path +
                     "' AS log; UPDATE ledger_entries SET metadata = (SELECT metadata FROM"
                     " log.events WHERE events.position = ledger_entries.position); DETACH log;"
                     " PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql,"
                     " 'metadata             TEXT,', 'metadata             TEXT    NOT NULL,')"
                     " WHERE name = 'ledger_entries'; PRAGMA writable_schema = OFF;"
                     " PRAGMA user_version = 4;");
  EXPECT_EQ(count("read.db",
                  "SELECT count(*) FROM sqlite_schema WHERE name = 'ledger_entries'"
                  " AND sql LIKE '%metadata%TEXT%NOT NULL%'"),
            1);
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM ledger_entries WHERE metadata IS NULL"), 0);

  ASSERT_TRUE(read_store().checkpoints().ok());  // opens it read-write: the move
  EXPECT_EQ(count("read.db", "PRAGMA user_version"), kReadSchemaVersion);
  EXPECT_EQ(count("read.db",
                  "SELECT count(*) FROM sqlite_schema WHERE name = 'ledger_entries'"
                  " AND instr(sql, 'metadata             TEXT,') > 0"),
            1);
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM ledger_entries"), entries);
  EXPECT_EQ(count("read.db", "SELECT position FROM checkpoints WHERE projector = 'ledger'"),
            checkpoint);
  EXPECT_EQ(count("read.db",
                  "SELECT count(*) FROM pragma_integrity_check"
                  " WHERE integrity_check != 'ok'"),
            0);
  // New entries store NULL beside the old ones' metadata; every entry reads the log's.
  workload(4, 30, 11);
  catch_up();
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM ledger_entries WHERE metadata IS NOT NULL"),
            entries);
  EXPECT_GT(count("read.db", "SELECT count(*) FROM ledger_entries WHERE metadata IS NULL"), 0);
  expect_copies_of_the_log(read_store());
  auto report = verify(log(), &read_store());
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report.value().ok())
      << (report.value().differences.empty() ? "" : report.value().differences.front());
}

// A read.db of schema 5 (a credit's or debit's reference key with the wallet before the
// version) keeps its rows and checkpoints; only those keys are recomputed, and GET
// /ledger/reference finds the entries by the new ones.
TEST_F(EventCopyDocumentsTest, ASchema5ReadSideGetsItsReferenceKeysRecomputed) {
  const auto [entries, checkpoint] = project_and_close();
  const std::string key_sum = "SELECT sum(reference_hash % 1000003) FROM ledger_entries";
  const std::int64_t keys = count("read.db", key_sum);
  ASSERT_GT(count("read.db", "SELECT count(*) FROM ledger_entries WHERE reference_id = 'w0:1'"), 0);
  // What version 5 wrote: the two halves of those keys the other way round.
  sql("read.db",
      "UPDATE ledger_entries SET reference_hash = ((reference_hash & 4294967295) << 32) |"
      " ((reference_hash >> 32) & 4294967295) WHERE related_wallet_id IS NULL;"
      " CREATE TABLE ledger_entries_next AS SELECT * FROM ledger_entries;"
      " PRAGMA user_version = 5;");
  ASSERT_NE(count("read.db", key_sum), keys);
  {
    auto before = verify(log(), &read_store());  // read-write: the move
    ASSERT_TRUE(before.ok()) << before.error().message;
    EXPECT_TRUE(before.value().ok())
        << (before.value().differences.empty() ? "" : before.value().differences.front());
  }
  EXPECT_EQ(count("read.db", "PRAGMA user_version"), kReadSchemaVersion);
  EXPECT_EQ(count("read.db", key_sum), keys);
  // An older wallex's rebuild under way is dropped, not carried over with keys of the old layout.
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_next'"), 0);
  EXPECT_EQ(count("read.db",
                  "SELECT count(*) FROM sqlite_schema WHERE name = 'ledger_entries_by_reference'"),
            1);
  EXPECT_EQ(count("read.db", "SELECT count(*) FROM ledger_entries"), entries);
  EXPECT_EQ(count("read.db", "SELECT position FROM checkpoints WHERE projector = 'ledger'"),
            checkpoint);
  auto found = read_store().entries_by_reference("w0:1", 10);
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_EQ(found.value().size(), 1U);
  EXPECT_EQ(found.value().front().wallet_id, "w0");
  EXPECT_EQ(found.value().front().version, 1);
}

TEST_F(EventCopyDocumentsTest, AReadSideOfItsOwnKeepsThem) {
  workload(4, 30);
  auto own = SqliteReadStore::open_file((std::filesystem::path(dir_) / "own.db").string(),
                                        SqliteReadStore::Access::kReadWrite);
  ASSERT_TRUE(own.ok()) << own.error().message;
  ProjectionRunner projecting(log(), *own.value(), make_projectors(), clock_, {});
  ASSERT_TRUE(projecting.open().ok());
  ASSERT_TRUE(projecting.catch_up().ok());
  EXPECT_GT(count("own.db", "SELECT count(*) FROM wallet_events"), 30);
  EXPECT_EQ(
      count("own.db", "SELECT count(*) FROM wallet_events WHERE data IS NULL OR metadata IS NULL"),
      0);
  EXPECT_EQ(count("own.db", "SELECT count(*) FROM ledger_entries WHERE metadata IS NULL"), 0);
  expect_copies_of_the_log(*own.value());
}

TEST_F(EventCopyDocumentsTest, ACopyWithoutItsLogIsAnError) {
  workload(2, 5);
  catch_up();
  // read.db opened as a file of its own: the documents it left to the log cannot be found.
  auto alone = SqliteReadStore::open_file(SqliteReadStore::path_in(dir_),
                                          SqliteReadStore::Access::kReadOnly);
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  auto events = alone.value()->wallet_events("w0", 0, 10);
  ASSERT_FALSE(events.ok());
  EXPECT_EQ(events.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(events.error().message.find("no log beside it"), std::string::npos)
      << events.error().message;
  EntryFilter of_w0;
  of_w0.wallet_id = "w0";
  auto entries = alone.value()->find_entries(of_w0);
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.error().kind, StoreErrorKind::kCorrupt);
  EXPECT_NE(entries.error().message.find("ledger entry at position"), std::string::npos)
      << entries.error().message;
  // An event the log lost: its copy cannot be completed either, read in a range (a scan) or
  // alone (the wallet's history).
  sql("wallex.db", "DELETE FROM events WHERE position = 1");
  for (auto lost :
       {read_store().scan_wallet_events(0, 10), read_store().wallet_events("w0", 0, 1)}) {
    ASSERT_FALSE(lost.ok());
    EXPECT_EQ(lost.error().kind, StoreErrorKind::kCorrupt);
    EXPECT_NE(lost.error().message.find("position 1: not in the log"), std::string::npos)
        << lost.error().message;
  }
  // The same for a ledger entry, in a scan (a range) and in its wallet's ledger (one read).
  auto first_entry = read_store().scan_entries(0, 1);
  ASSERT_TRUE(first_entry.ok()) << first_entry.error().message;
  ASSERT_EQ(first_entry.value().size(), 1u);
  const LedgerEntry entry = first_entry.value().front();
  sql("wallex.db", "DELETE FROM events WHERE position = " + std::to_string(entry.position));
  EntryFilter of_its_wallet;
  of_its_wallet.wallet_id = entry.wallet_id;
  for (auto lost : {read_store().scan_entries(0, 10), read_store().find_entries(of_its_wallet)}) {
    ASSERT_FALSE(lost.ok());
    EXPECT_EQ(lost.error().kind, StoreErrorKind::kCorrupt);
    EXPECT_NE(lost.error().message.find("ledger entry at position " +
                                        std::to_string(entry.position) + ": not in the log"),
              std::string::npos)
        << lost.error().message;
  }
}

}  // namespace
}  // namespace wallex::testing
