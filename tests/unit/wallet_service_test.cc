#include "service/wallet_service.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "service/reply_encoding.h"
#include "store/sqlite/sqlite_read_store.h"
#include "store/sqlite/sqlite_store.h"

namespace wallex {
namespace {

Money money(std::string_view text) { return Money::parse(text).value(); }

// Forwards to a real store; lets a test hold a commit back or make it fail.
class ControlledStore final : public EventStore {
 public:
  explicit ControlledStore(EventStore& inner) : inner_(inner) {}

  void hold_commits() { hold(commit_gate_); }
  void release_commits() { release(commit_gate_); }
  // Blocks until the writer is inside a held commit.
  void wait_until_commit_is_held() { wait_until_held(commit_gate_); }
  void fail_next_commit(StoreErrorKind kind) { fail_next_commits(kind, 1); }
  // The next `count` commits fail with `kind` without reaching the store.
  void fail_next_commits(StoreErrorKind kind, int count) {
    std::lock_guard lock(mutex_);
    fail_next_ = count > 0 ? std::optional<StoreErrorKind>(kind) : std::nullopt;
    fail_count_ = count;
  }
  // Pretend other instances share the store (as PostgreSQL would).
  void set_shared(bool shared) { shared_ = shared; }
  int wallet_reads() const {
    std::lock_guard lock(mutex_);
    return wallet_reads_;
  }
  void fail_next_lookup(StoreErrorKind kind) {
    std::lock_guard lock(mutex_);
    fail_next_lookup_ = kind;
  }
  // Runs once, at the start of the next key lookup (another instance committing just then).
  void before_next_lookup(std::function<void()> action) {
    std::lock_guard lock(mutex_);
    before_next_lookup_ = std::move(action);
  }
  int commits() const {
    std::lock_guard lock(mutex_);
    return commits_;
  }
  // Pipelined: write() and sync() go to the inner (pipelined) store; syncs can be held or fail.
  void set_pipelined(bool pipelined) { pipelined_ = pipelined; }
  void hold_syncs() { hold(sync_gate_); }
  void release_syncs() { release(sync_gate_); }
  // Blocks until the syncer is inside a held sync.
  void wait_until_sync_is_held() { wait_until_held(sync_gate_); }
  void fail_next_sync() {
    std::lock_guard lock(mutex_);
    fail_next_sync_ = true;
  }
  int writes() const {
    std::lock_guard lock(mutex_);
    return writes_;
  }

  Result<std::vector<WalletState>, StoreError> load_wallets() override {
    return inner_.load_wallets();
  }
  Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) override {
    {
      std::lock_guard lock(mutex_);
      ++wallet_reads_;
    }
    return inner_.read_wallets(ids);
  }
  bool shared() const override { return shared_.load(); }
  Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) override {
    return inner_.find_idempotency(key);
  }
  Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) override {
    std::function<void()> before;
    {
      std::lock_guard lock(mutex_);
      before.swap(before_next_lookup_);
    }
    if (before) before();
    {
      std::lock_guard lock(mutex_);
      if (fail_next_lookup_) {
        const StoreErrorKind kind = *fail_next_lookup_;
        fail_next_lookup_.reset();
        return fail(StoreError{kind, "injected lookup failure"});
      }
    }
    return inner_.find_idempotency_many(keys);
  }
  Result<CommitResult, StoreError> commit(const CommitBatch& batch) override {
    {
      std::unique_lock lock(mutex_);
      pass(commit_gate_, lock);
      ++commits_;
      if (fail_next_) {
        const StoreErrorKind kind = *fail_next_;
        if (--fail_count_ <= 0) fail_next_.reset();
        return fail(StoreError{kind, "injected failure"});
      }
    }
    return inner_.commit(batch);
  }
  bool pipelined() const override { return pipelined_.load(); }
  Result<CommitResult, StoreError> write(const CommitBatch& batch) override {
    {
      std::lock_guard lock(mutex_);
      ++writes_;
    }
    return inner_.write(batch);
  }
  Status<StoreError> sync() override {
    {
      std::unique_lock lock(mutex_);
      pass(sync_gate_, lock);
      if (fail_next_sync_) {
        fail_next_sync_ = false;
        return fail(StoreError{StoreErrorKind::kIo, "injected fsync failure"});
      }
    }
    return inner_.sync();
  }
  Result<std::int64_t, StoreError> purge_idempotency(TimestampMs before,
                                                     std::size_t limit) override {
    return inner_.purge_idempotency(before, limit);
  }
  Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after,
                                                           std::size_t limit) override {
    return inner_.read_events(after, limit);
  }
  Result<std::int64_t, StoreError> last_position() override { return inner_.last_position(); }

 private:
  // A point in a store call (commit, sync) where a test can hold the calling thread.
  struct Gate {
    bool held = false;
    bool waiting = false;  // a thread is inside, held
  };
  void hold(Gate& gate) {
    std::lock_guard lock(mutex_);
    gate.held = true;
  }
  void release(Gate& gate) {
    {
      std::lock_guard lock(mutex_);
      gate.held = false;
    }
    changed_.notify_all();
  }
  void wait_until_held(Gate& gate) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&gate] { return gate.waiting; });
  }
  // Called with mutex_ held: waits while the gate is held.
  void pass(Gate& gate, std::unique_lock<std::mutex>& lock) {
    gate.waiting = true;
    changed_.notify_all();
    changed_.wait(lock, [&gate] { return !gate.held; });
    gate.waiting = false;
  }

  EventStore& inner_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Gate commit_gate_;
  Gate sync_gate_;
  int commits_ = 0;
  std::function<void()> before_next_lookup_;
  std::optional<StoreErrorKind> fail_next_lookup_;
  std::optional<StoreErrorKind> fail_next_;
  int fail_count_ = 0;
  int wallet_reads_ = 0;
  std::atomic<bool> shared_{false};
  std::atomic<bool> pipelined_{false};
  bool fail_next_sync_ = false;
  int writes_ = 0;
};

class WalletServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wallex-svc-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    start();
  }
  void TearDown() override {
    service_.reset();
    controlled_.reset();
    sqlite_.reset();
    std::filesystem::remove_all(dir_);
  }
  // The writer writes every command as soon as it takes it, the syncer busy or not.
  static ServiceOptions write_at_once() {
    ServiceOptions options;
    options.sync_gather_commands = 1;
    return options;
  }
  void start(ServiceOptions options = {}, bool pipelined = false) {
    service_.reset();
    controlled_.reset();
    sqlite_.reset();
    auto opened = SqliteStore::open(dir_);
    ASSERT_TRUE(opened.ok());
    sqlite_ = std::move(opened).value();
    controlled_ = std::make_unique<ControlledStore>(*sqlite_);
    controlled_->set_pipelined(pipelined);
    options.on_fatal = [this](const StoreError&) { fatal_calls_.fetch_add(1); };
    options.on_commit = [this](std::int64_t position) { committed_position_.store(position); };
    service_ = std::make_unique<WalletService>(*controlled_, clock_, ids_, options);
    ASSERT_TRUE(service_->start().ok());
  }

  std::future<Reply> submit_async(Command command, std::optional<std::string> key = std::nullopt) {
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    service_->submit(CommandRequest{std::move(command), std::move(key), "corr"},
                     [promise](Reply&& reply) { promise->set_value(std::move(reply)); });
    return future;
  }
  Reply submit(Command command, std::optional<std::string> key = std::nullopt) {
    return submit_async(std::move(command), std::move(key)).get();
  }
  void create(const std::string& id, std::string_view initial) {
    ASSERT_EQ(submit(CreateWallet{id, "owner", money(initial)}).status, 201);
  }
  // A fresh store instance on a consistent copy of the files (VACUUM INTO, in one read
  // transaction): the running service holds the data directory's lock, so a second store
  // cannot open it.
  std::unique_ptr<SqliteStore> fresh_copy() {
    const std::string copy_dir = dir_ + "/copy";
    std::filesystem::remove_all(copy_dir);
    std::filesystem::create_directories(copy_dir);
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ + "/wallex.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    const std::string vacuum = "VACUUM INTO '" + copy_dir + "/wallex.db'";
    EXPECT_EQ(sqlite3_exec(db, vacuum.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
    auto store = SqliteStore::open(copy_dir);
    EXPECT_TRUE(store.ok()) << (store ? "" : store.error().message);
    return store ? std::move(store).value() : nullptr;
  }
  // The persisted write model row of a wallet, read through a fresh store instance.
  std::optional<WalletState> on_disk(const std::string& id) {
    auto store = fresh_copy();
    if (!store) return std::nullopt;
    for (const WalletState& w : store->load_wallets().value()) {
      if (w.id == id) return w;
    }
    return std::nullopt;
  }

  std::string dir_;
  ManualClock clock_{1'764'000'000'000};
  RandomIdGenerator ids_{42};
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<ControlledStore> controlled_;
  std::unique_ptr<WalletService> service_;
  std::atomic<int> fatal_calls_{0};
  std::atomic<std::int64_t> committed_position_{0};
};

bool answered(std::future<Reply>& reply) {
  return reply.wait_for(std::chrono::milliseconds(100)) == std::future_status::ready;
}

TEST_F(WalletServiceTest, ConcurrentCommandsShareOneCommit) {
  create("w", "0");
  controlled_->hold_commits();
  auto first = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_commit_is_held();
  const int commits_before = controlled_->commits();
  std::vector<std::future<Reply>> rest;
  for (int i = 0; i < 500; ++i) rest.push_back(submit_async(CreditWallet{"w", money("0.01"), {}}));
  controlled_->release_commits();
  EXPECT_EQ(first.get().status, 201);
  for (auto& f : rest) EXPECT_EQ(f.get().status, 201);
  // The held commit, then the 500 queued behind it decided and committed together: two commits.
  EXPECT_EQ(controlled_->commits() - commits_before, 2);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("6"));
  EXPECT_EQ(service_->find_wallet("w")->version, 501);
  EXPECT_EQ(on_disk("w"), service_->find_wallet("w"));
}

TEST_F(WalletServiceTest, RepliesCarryTheCommitPosition) {
  const Reply created = submit(CreateWallet{"w", "o", money("5")});
  EXPECT_EQ(created.position, 2);  // created + initial credit
  EXPECT_EQ(submit(CreditWallet{"w", money("1"), {}}).position, 3);
  EXPECT_EQ(submit(DebitWallet{"w", money("100"), {}}).position, 0);  // refused: wrote nothing
}

TEST_F(WalletServiceTest, AFailedCommitFailsItsBatchAndChangesNothing) {
  create("w", "10");
  controlled_->fail_next_commit(StoreErrorKind::kFull);
  const Reply failed = submit(CreditWallet{"w", money("5"), {}}, "key-1");
  EXPECT_EQ(failed.status, 503);
  EXPECT_NE(failed.body.find("STORE_FULL"), std::string::npos);
  EXPECT_NE(failed.body.find("disk is full"), std::string::npos);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("10"));
  EXPECT_EQ(service_->find_wallet("w")->version, 1);
  EXPECT_EQ(on_disk("w"), service_->find_wallet("w"));
  EXPECT_EQ(fatal_calls_.load(), 0);  // a full disk is not fatal
  // The key was not recorded: the retry executes for real.
  const Reply retried = submit(CreditWallet{"w", money("5"), {}}, "key-1");
  EXPECT_EQ(retried.status, 201);
  EXPECT_FALSE(retried.replayed);
  EXPECT_EQ(service_->find_wallet("w")->version, 2);
}

TEST_F(WalletServiceTest, AnIoFailureIsFatal) {
  create("w", "10");
  controlled_->fail_next_commit(StoreErrorKind::kIo);
  const Reply failed = submit(CreditWallet{"w", money("5"), {}});
  EXPECT_EQ(failed.status, 503);
  EXPECT_NE(failed.body.find("STORE_UNAVAILABLE"), std::string::npos);
  // An fsync that failed may still have left the batch on disk: the reply must not deny it.
  EXPECT_NE(failed.body.find("may or may not have been applied"), std::string::npos);
  EXPECT_EQ(fatal_calls_.load(), 1);
  EXPECT_TRUE(service_->health().store_failed);
  // Never retried: every later command is refused without touching the store.
  const int commits = controlled_->commits();
  EXPECT_EQ(submit(CreditWallet{"w", money("5"), {}}).status, 503);
  EXPECT_EQ(controlled_->commits(), commits);
}

TEST_F(WalletServiceTest, AnIoFailureReadingIdempotencyKeysIsFatalToo) {
  create("w", "10");
  controlled_->fail_next_lookup(StoreErrorKind::kIo);
  EXPECT_EQ(submit(CreditWallet{"w", money("5"), {}}, "key-1").status, 503);
  EXPECT_EQ(fatal_calls_.load(), 1);
  EXPECT_TRUE(service_->health().store_failed);
  const int commits = controlled_->commits();
  EXPECT_EQ(submit(CreditWallet{"w", money("5"), {}}, "key-2").status, 503);
  EXPECT_EQ(controlled_->commits(), commits);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("10"));
}

TEST_F(WalletServiceTest, IdempotentReplayReturnsTheStoredReply) {
  create("w", "10");
  const Reply first = submit(CreditWallet{"w", money("5"), "x"}, "k");
  ASSERT_EQ(first.status, 201);
  const Reply again = submit(CreditWallet{"w", money("5"), "x"}, "k");
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.position, first.position);
  EXPECT_EQ(service_->find_wallet("w")->version, 2);

  const Reply different = submit(CreditWallet{"w", money("6"), "x"}, "k");
  EXPECT_EQ(different.status, 409);
  EXPECT_NE(different.body.find("IDEMPOTENCY_KEY_REUSED"), std::string::npos);
  EXPECT_EQ(submit(DebitWallet{"w", money("5"), "x"}, "k").status, 409);
}

// The record keeps a snapshot or transfer reply in its compact form (service/reply_encoding.h):
// a replay after the wallets moved on still answers what the request was answered then.
TEST_F(WalletServiceTest, AReplayAfterTheWalletsMovedOnAnswersTheOriginalBytes) {
  const Reply created = submit(CreateWallet{"w", "owner", money("10")}, "c");
  ASSERT_EQ(created.status, 201);
  clock_.advance_ms(1'000);
  create("other", "0");
  clock_.advance_ms(1'000);
  const Reply credited = submit(CreditWallet{"w", money("5"), "x"}, "k1");
  ASSERT_EQ(credited.status, 201);
  clock_.advance_ms(1'000);
  const Reply transferred = submit(TransferMoney{"w", "other", money("3"), {}, {}}, "k2");
  ASSERT_EQ(transferred.status, 201);
  clock_.advance_ms(1'000);
  ASSERT_EQ(submit(CreditWallet{"w", money("100"), {}}).status, 201);
  clock_.advance_ms(1'000);
  ASSERT_EQ(submit(TransferMoney{"other", "w", money("1"), {}, {}}).status, 201);
  clock_.advance_ms(1'000);
  start();  // the records and wallets as the store gives them back
  const Reply created_again = submit(CreateWallet{"w", "owner", money("10")}, "c");
  const Reply credited_again = submit(CreditWallet{"w", money("5"), "x"}, "k1");
  const Reply transferred_again = submit(TransferMoney{"w", "other", money("3"), {}, {}}, "k2");
  EXPECT_TRUE(created_again.replayed && credited_again.replayed && transferred_again.replayed);
  EXPECT_EQ(created_again.body, created.body);
  EXPECT_EQ(credited_again.body, credited.body);
  EXPECT_EQ(transferred_again.body, transferred.body);
  EXPECT_EQ(transferred_again.status, 201);
  EXPECT_EQ(service_->find_wallet("w")->version, 5);
}

TEST_F(WalletServiceTest, BusinessFailuresAreReplayedToo) {
  create("w", "10");
  const Reply refused = submit(DebitWallet{"w", money("50"), {}}, "k");
  ASSERT_EQ(refused.status, 400);
  create("other", "0");
  ASSERT_EQ(submit(CreditWallet{"w", money("100"), {}}).status, 201);
  const Reply replay = submit(DebitWallet{"w", money("50"), {}}, "k");
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.status, 400);
  EXPECT_EQ(replay.body, refused.body);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("110"));
}

TEST_F(WalletServiceTest, TheSameKeyInFlightIsAConflict) {
  create("w", "10");
  controlled_->hold_commits();
  auto blocker = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_commit_is_held();
  auto first = submit_async(CreditWallet{"w", money("1"), {}}, "k");
  auto second = submit_async(CreditWallet{"w", money("1"), {}}, "k");
  controlled_->release_commits();
  EXPECT_EQ(blocker.get().status, 201);
  EXPECT_EQ(first.get().status, 201);
  const Reply conflict = second.get();
  EXPECT_EQ(conflict.status, 409);
  EXPECT_NE(conflict.body.find("IDEMPOTENCY_REQUEST_IN_FLIGHT"), std::string::npos);
  EXPECT_EQ(service_->find_wallet("w")->version, 3);
}

TEST_F(WalletServiceTest, ExpiredKeysExecuteAgainAndArePurged) {
  ServiceOptions options;
  options.idempotency_retention_ms = 1000;
  options.purge_interval_ms = 10;
  start(options);
  create("w", "0");
  ASSERT_EQ(submit(CreditWallet{"w", money("1"), {}}, "k").status, 201);
  clock_.advance_ms(1001);
  const Reply later = submit(CreditWallet{"w", money("1"), {}}, "k");
  EXPECT_EQ(later.status, 201);
  EXPECT_FALSE(later.replayed);
  EXPECT_EQ(service_->find_wallet("w")->version, 2);
  // The re-executed request wrote a fresh record; once that one expires the purge removes it.
  clock_.advance_ms(2000);
  // Probed through a separate connection: the writer owns sqlite_'s.
  const auto key_on_disk = [this] {
    auto store = fresh_copy();
    return store != nullptr && store->find_idempotency("k").value().has_value();
  };
  for (int i = 0; i < 200 && key_on_disk(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(key_on_disk());
}

TEST_F(WalletServiceTest, AFullQueueAnswersOverloadedAtOnce) {
  ServiceOptions options;
  options.queue_length_max = 2;
  start(options);
  create("w", "0");
  controlled_->hold_commits();
  auto in_commit = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_commit_is_held();
  auto queued1 = submit_async(CreditWallet{"w", money("1"), {}});
  auto queued2 = submit_async(CreditWallet{"w", money("1"), {}});
  const Reply refused = submit(CreditWallet{"w", money("1"), {}});  // answered without the writer
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("OVERLOADED"), std::string::npos);
  controlled_->release_commits();
  EXPECT_EQ(in_commit.get().status, 201);
  EXPECT_EQ(queued1.get().status, 201);
  EXPECT_EQ(queued2.get().status, 201);
  EXPECT_EQ(service_->find_wallet("w")->version, 3);
}

TEST_F(WalletServiceTest, StateIsLoadedFromTheWriteModelOnRestart) {
  create("a", "100");
  create("b", "0");
  ASSERT_EQ(submit(TransferMoney{"a", "b", money("25.5"), {}, {}}).status, 201);
  const WalletState a = *service_->find_wallet("a");
  const WalletState b = *service_->find_wallet("b");
  start();
  EXPECT_EQ(service_->find_wallet("a"), a);
  EXPECT_EQ(service_->find_wallet("b"), b);
  EXPECT_EQ(service_->health().wallet_count, 2u);
  EXPECT_EQ(service_->health().last_position, 5);
}

TEST_F(WalletServiceTest, StopDrainsTheQueue) {
  create("w", "0");
  controlled_->hold_commits();
  auto first = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_commit_is_held();
  std::vector<std::future<Reply>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(submit_async(CreditWallet{"w", money("1"), {}}));
  std::thread stopper([this] { service_->stop(); });
  controlled_->release_commits();
  stopper.join();
  EXPECT_EQ(first.get().status, 201);
  for (auto& f : queued) EXPECT_EQ(f.get().status, 201);
  EXPECT_EQ(submit(CreditWallet{"w", money("1"), {}}).status, 503);  // no longer accepting
  EXPECT_EQ(on_disk("w")->version, 11);
}

TEST_F(WalletServiceTest, AStoreOwnedByThisProcessIsNeverReReadBeforeDeciding) {
  create("a", "10");
  create("b", "0");
  EXPECT_EQ(submit(TransferMoney{"a", "b", money("4"), {}, {}}).status, 201);
  EXPECT_EQ(submit(CreditWallet{"b", money("1"), {}}, "k").status, 201);
  EXPECT_EQ(controlled_->wallet_reads(), 0);
}

TEST_F(WalletServiceTest, OnASharedStoreConflictsAreDecidedAgainAndNeverReachTheClient) {
  controlled_->set_shared(true);
  create("w", "0");
  const int reads_before = controlled_->wallet_reads();
  controlled_->hold_commits();
  auto first = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_commit_is_held();
  std::vector<std::future<Reply>> rest;
  for (int i = 0; i < 100; ++i) {
    rest.push_back(submit_async(CreditWallet{"w", money("0.01"), {}}, "key-" + std::to_string(i)));
  }
  // The held commit and the next five attempts conflict: the batch of 100 is split in halves
  // after every second conflict, and everything commits in the end.
  controlled_->fail_next_commits(StoreErrorKind::kConflict, 6);
  controlled_->release_commits();
  EXPECT_EQ(first.get().status, 201);
  for (auto& f : rest) {
    const Reply reply = f.get();
    EXPECT_EQ(reply.status, 201) << reply.body;
    EXPECT_FALSE(reply.replayed);
  }
  EXPECT_EQ(service_->find_wallet("w")->balance, money("2"));
  EXPECT_EQ(service_->find_wallet("w")->version, 101);
  EXPECT_EQ(on_disk("w"), service_->find_wallet("w"));
  EXPECT_EQ(service_->health().conflicts, 6u);
  EXPECT_GT(controlled_->wallet_reads(), reads_before + 6);  // every attempt re-read its wallets
  EXPECT_EQ(fatal_calls_.load(), 0);
}

TEST_F(WalletServiceTest, OnASharedStoreACommandThatAlwaysConflictsGets503AfterTheLimit) {
  ServiceOptions options;
  options.single_command_attempts_max = 5;
  start(options);
  controlled_->set_shared(true);
  create("w", "3");
  const int commits_before = controlled_->commits();
  controlled_->fail_next_commits(StoreErrorKind::kConflict, 1000);
  const Reply refused = submit(CreditWallet{"w", money("1"), {}});
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("not applied after 5 attempts"), std::string::npos) << refused.body;
  EXPECT_EQ(controlled_->commits() - commits_before, 5);
  controlled_->fail_next_commits(StoreErrorKind::kConflict, 0);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("3"));
  EXPECT_EQ(on_disk("w"), service_->find_wallet("w"));
  EXPECT_EQ(fatal_calls_.load(), 0);
}

// Another instance commits a create and its key's record just before this one looks the key up:
// the record is found, and the wallet its compact reply is rebuilt from is read after it.
TEST_F(WalletServiceTest, OnASharedStoreARecordCommittedElsewhereJustBeforeTheLookupReplays) {
  controlled_->set_shared(true);
  const CreateWallet command{"w2", "owner", money("0")};
  const WalletState created{"w2", "owner", money("0"), 0, clock_.now_ms(), clock_.now_ms()};
  controlled_->before_next_lookup([&] {
    CommitBatch batch;
    CommitBatch::Entry entry;
    Event event;
    event.type = EventType::kWalletCreated;
    event.wallet_id = "w2";
    event.occurred_at_ms = created.created_at_ms;
    event.owner_id = "owner";
    entry.events.push_back(event);
    entry.metadata = EventMetadata{"elsewhere", "k"};
    entry.idempotency =
        IdempotencyRecord{"k", fingerprint(Command{command}), 201, stored_snapshot(created),
                          0,   created.created_at_ms};
    batch.entries.push_back(std::move(entry));
    batch.wallets.push_back(WalletWrite{created, -1});
    ASSERT_TRUE(sqlite_->commit(batch).ok());
  });
  const Reply reply = submit(command, "k");
  EXPECT_EQ(reply.status, 201) << reply.body;
  EXPECT_TRUE(reply.replayed);
  EXPECT_EQ(reply.body, encode_snapshot(created));
  EXPECT_EQ(fatal_calls_.load(), 0);
}

TEST_F(WalletServiceTest, WithoutASharedStoreAReadIsAnsweredAtOnceFromMemory) {
  create("w", "7");
  std::optional<Reply> answer;
  service_->read_wallet("w", [&answer](Reply&& reply) { answer = std::move(reply); });
  ASSERT_TRUE(answer.has_value());  // synchronously, on this thread
  EXPECT_EQ(answer->status, 200);
  EXPECT_NE(answer->body.find("\"balance\":7"), std::string::npos) << answer->body;
  std::optional<Reply> missing;
  service_->read_wallet("nope", [&missing](Reply&& reply) { missing = std::move(reply); });
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(controlled_->wallet_reads(), 0);
}

TEST_F(WalletServiceTest, OnASharedStoreAReadSeesAnotherInstancesCommit) {
  controlled_->set_shared(true);
  create("w", "7");
  // Another instance credits "w" (here: a commit straight to the store, behind the service).
  CommitBatch other;
  CommitBatch::Entry entry;
  Event credit;
  credit.type = EventType::kWalletCredited;
  credit.wallet_id = "w";
  credit.version = 2;
  credit.occurred_at_ms = 5;
  credit.amount = money("3");
  entry.events = {credit};
  other.entries.push_back(entry);
  WalletState after = *service_->find_wallet("w");
  after.balance = money("10");
  after.version = 2;
  other.wallets = {WalletWrite{after, 1}};
  ASSERT_TRUE(sqlite_->commit(other).ok());

  auto promise = std::make_shared<std::promise<Reply>>();
  auto future = promise->get_future();
  service_->read_wallet("w", [promise](Reply&& reply) { promise->set_value(std::move(reply)); });
  const Reply read = future.get();
  EXPECT_EQ(read.status, 200);
  EXPECT_NE(read.body.find("\"balance\":10"), std::string::npos) << read.body;
  EXPECT_NE(read.body.find("\"version\":2"), std::string::npos) << read.body;
  EXPECT_EQ(service_->find_wallet("w")->version, 2);  // what it read is published

  auto missing_promise = std::make_shared<std::promise<Reply>>();
  auto missing = missing_promise->get_future();
  service_->read_wallet(
      "nope", [missing_promise](Reply&& reply) { missing_promise->set_value(std::move(reply)); });
  EXPECT_EQ(missing.get().status, 404);
  // And the next command on "w" is decided on the state the other instance left.
  EXPECT_EQ(submit(DebitWallet{"w", money("10"), {}}).status, 201);
}

// Pipelined commits: the writer decides and writes the next batch while the previous one waits
// for its fsync; nothing of a batch is answered, published or announced before that fsync.
TEST_F(WalletServiceTest, PipelinedRepliesWaitForTheirSyncAndTheNextBatchBuildsOnTheUnsyncedOne) {
  start(write_at_once(), /*pipelined=*/true);
  create("w", "100");
  const std::int64_t durable_position = committed_position_.load();
  controlled_->hold_syncs();
  auto credit = submit_async(CreditWallet{"w", money("50"), {}}, "k1");
  controlled_->wait_until_sync_is_held();
  // Written, not durable: no answer, the published state and the log head stay where they were.
  EXPECT_FALSE(answered(credit));
  EXPECT_EQ(service_->find_wallet("w")->balance, money("100"));
  EXPECT_EQ(service_->health().last_position, durable_position);
  EXPECT_EQ(service_->health().unsynced_batches, 1u);
  EXPECT_EQ(committed_position_.load(), durable_position);
  // The next batch is decided on the unsynced state (150) and written while the sync waits.
  const int writes = controlled_->writes();
  auto debit = submit_async(DebitWallet{"w", money("120"), {}});
  // The key of the unsynced batch is in flight: refused at once.
  auto same_key = submit_async(CreditWallet{"w", money("50"), {}}, "k1");
  ASSERT_TRUE(answered(same_key));
  const Reply in_flight = same_key.get();
  EXPECT_EQ(in_flight.status, 409);
  EXPECT_NE(in_flight.body.find("IDEMPOTENCY_REQUEST_IN_FLIGHT"), std::string::npos);
  // A refusal decided on unsynced state (30 left) waits for that state's fsync as well.
  auto refused = submit_async(DebitWallet{"w", money("100"), {}});
  EXPECT_FALSE(answered(debit));
  EXPECT_FALSE(answered(refused));
  EXPECT_GT(controlled_->writes(), writes);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("100"));

  controlled_->release_syncs();
  const Reply credited = credit.get();
  EXPECT_EQ(credited.status, 201);
  EXPECT_NE(credited.body.find("\"balance\":150"), std::string::npos) << credited.body;
  const Reply debited = debit.get();
  EXPECT_EQ(debited.status, 201);
  EXPECT_NE(debited.body.find("\"balance\":30"), std::string::npos) << debited.body;
  const Reply refusal = refused.get();
  EXPECT_EQ(refusal.status, 400);
  EXPECT_NE(refusal.body.find("INSUFFICIENT_FUNDS"), std::string::npos);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("30"));
  EXPECT_EQ(service_->find_wallet("w")->version, 3);
  EXPECT_EQ(committed_position_.load(), debited.position);
  EXPECT_EQ(service_->health().last_position, debited.position);
  EXPECT_EQ(service_->health().unsynced_batches, 0u);
  // Durable now: the key replays.
  const Reply replay = submit(CreditWallet{"w", money("50"), {}}, "k1");
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.body, credited.body);
  service_->stop();
  EXPECT_EQ(on_disk("w")->balance, money("30"));
}

TEST_F(WalletServiceTest, PipelinedAFailedSyncIsFatalAndFailsEveryUnsyncedBatch) {
  start(write_at_once(), /*pipelined=*/true);
  create("w", "10");
  controlled_->hold_syncs();
  auto first = submit_async(CreditWallet{"w", money("5"), {}}, "k1");
  controlled_->wait_until_sync_is_held();
  auto second = submit_async(CreditWallet{"w", money("7"), {}}, "k2");
  // Wait until the second batch is written (queued behind the held sync).
  for (int i = 0; i < 200 && controlled_->writes() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(controlled_->writes(), 3);  // create, first, second
  controlled_->fail_next_sync();
  controlled_->release_syncs();
  for (auto* reply : {&first, &second}) {
    const Reply failed = reply->get();
    EXPECT_EQ(failed.status, 503);
    EXPECT_NE(failed.body.find("may or may not have been applied"), std::string::npos);
  }
  EXPECT_EQ(fatal_calls_.load(), 1);
  EXPECT_TRUE(service_->health().store_failed);
  // Nothing unsynced was ever published; nothing more is written.
  EXPECT_EQ(service_->find_wallet("w")->balance, money("10"));
  const int writes = controlled_->writes();
  EXPECT_EQ(submit(CreditWallet{"w", money("1"), {}}).status, 503);
  EXPECT_EQ(controlled_->writes(), writes);
}

// While the syncer is busy, commands gather until sync_gather_commands are queued, and are
// written as one batch then; with the syncer idle, a lone command is written at once.
TEST_F(WalletServiceTest, PipelinedCommandsGatherWhileAnFsyncIsUnderWay) {
  ServiceOptions options;
  options.sync_gather_commands = 4;
  start(options, /*pipelined=*/true);
  create("w", "0");
  controlled_->hold_syncs();
  auto first = submit_async(CreditWallet{"w", money("1"), {}});
  controlled_->wait_until_sync_is_held();
  const int writes = controlled_->writes();
  std::vector<std::future<Reply>> gathered;
  for (int i = 0; i < 3; ++i) gathered.push_back(submit_async(CreditWallet{"w", money("1"), {}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(controlled_->writes(), writes);  // three queued: they wait for the fsync
  gathered.push_back(submit_async(CreditWallet{"w", money("1"), {}}));
  for (int i = 0; i < 200 && controlled_->writes() == writes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(controlled_->writes(), writes + 1);  // the fourth: all four in one batch
  EXPECT_FALSE(answered(first));
  controlled_->release_syncs();
  EXPECT_EQ(first.get().status, 201);
  for (auto& reply : gathered) EXPECT_EQ(reply.get().status, 201);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("5"));
  // The syncer idle again: a lone command is written and answered at once.
  const int before_lone = controlled_->writes();
  EXPECT_EQ(submit(CreditWallet{"w", money("1"), {}}).status, 201);
  EXPECT_EQ(controlled_->writes(), before_lone + 1);
  service_->stop();
  EXPECT_EQ(on_disk("w")->balance, money("6"));
}

TEST_F(WalletServiceTest, PipelinedStopAnswersEveryWrittenBatch) {
  start({}, /*pipelined=*/true);
  create("w", "0");
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 300; ++i) replies.push_back(submit_async(CreditWallet{"w", money("1"), {}}));
  service_->stop();
  for (auto& reply : replies) EXPECT_EQ(reply.get().status, 201);
  EXPECT_EQ(service_->find_wallet("w")->balance, money("300"));
  EXPECT_EQ(on_disk("w")->balance, money("300"));
}

// The events of durable commits handed over in memory (on_durable_events, the projector's feed)
// are exactly what the log holds: the same events, positions and stored documents, each once,
// in order, before the commit's on_commit, and never before its fsync.
class DurableEventsTest : public WalletServiceTest {
 protected:
  void start_collecting(bool pipelined) {
    ServiceOptions options;
    options.on_durable_events = [this](std::vector<LoggedEvent>&& events) {
      std::lock_guard lock(mutex_);
      // on_commit of this commit has not run yet; of every earlier one it has.
      EXPECT_LT(committed_position_.load(), events.front().position);
      EXPECT_EQ(committed_position_.load(), handed_.empty() ? 0 : handed_.back().position);
      for (LoggedEvent& event : events) handed_.push_back(std::move(event));
    };
    start(options, pipelined);
  }
  std::size_t handed() {
    std::lock_guard lock(mutex_);
    return handed_.size();
  }

  void run_commands_and_compare_with_the_log() {
    create("a", "100");
    create("b", "0");
    ASSERT_EQ(
        submit(CreditWallet{"a", money("1.25"), std::string("caf\u00e9 \"quoted\"\n\tend")}, "k1")
            .status,
        201);
    ASSERT_EQ(
        submit(CreditWallet{"a", money("1.25"), std::string("caf\u00e9 \"quoted\"\n\tend")}, "k1")
            .status,
        201);  // a replay: writes nothing
    ASSERT_EQ(submit(CreditWallet{"b", money("0.01"), std::string()}).status, 201);
    ASSERT_EQ(submit(DebitWallet{"b", money("5"), {}}).status, 400);  // refused: writes nothing
    ASSERT_EQ(submit(DebitWallet{"a", money("3"), {}}, "k2").status, 201);
    ASSERT_EQ(
        submit(TransferMoney{"a", "b", money("7.5"), std::string("rent"), "t-1"}, "k3").status,
        201);
    // Batches of many commands and several events each.
    std::vector<std::future<Reply>> replies;
    for (int i = 0; i < 300; ++i) {
      replies.push_back(
          i % 3 == 0   ? submit_async(TransferMoney{
                           "b", "a", money("0.01"), {}, "t-batch-" + std::to_string(i)})
          : i % 3 == 1 ? submit_async(CreditWallet{"b", money("1"), {}}, "key-" + std::to_string(i))
                       : submit_async(CreateWallet{"c" + std::to_string(i), "o",
                                                   money(i % 2 == 0 ? "2" : "0")}));
    }
    for (auto& reply : replies) ASSERT_EQ(reply.get().status, 201);
    service_->stop();

    auto opened = SqliteEventLog::open(dir_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    const std::vector<LoggedEvent> logged = opened.value()->read_events(0, 100'000).value();
    std::lock_guard lock(mutex_);
    ASSERT_EQ(handed_.size(), logged.size());
    ASSERT_GT(logged.size(), 400u);
    for (std::size_t i = 0; i < logged.size(); ++i) {
      // Events, positions, documents, and no rebuild's wallet slot (-1 in the log's).
      EXPECT_TRUE(handed_[i] == logged[i]) << "at position " << logged[i].position;
      EXPECT_EQ(logged[i].wallet_slot, -1);
    }
  }

  std::mutex mutex_;
  std::vector<LoggedEvent> handed_;
};

TEST_F(DurableEventsTest, AreWhatTheLogHoldsAfterEachCommit) {
  start_collecting(/*pipelined=*/false);
  run_commands_and_compare_with_the_log();
}

TEST_F(DurableEventsTest, AreWhatTheLogHoldsAfterEachSyncWhenPipelined) {
  start_collecting(/*pipelined=*/true);
  run_commands_and_compare_with_the_log();
}

TEST_F(DurableEventsTest, AreHandedOverOnlyOnceDurable) {
  start_collecting(/*pipelined=*/true);
  create("w", "100");
  const std::size_t before = handed();
  controlled_->hold_syncs();
  auto credit = submit_async(CreditWallet{"w", money("50"), {}});
  controlled_->wait_until_sync_is_held();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(handed(), before);
  controlled_->release_syncs();
  EXPECT_EQ(credit.get().status, 201);
  EXPECT_EQ(handed(), before + 1);
}

}  // namespace
}  // namespace wallex
