// Several WalletService instances on one PostgreSQL database, each with its own store
// (connection), as several `wallex serve` processes would be: concurrent commands over a few hot
// wallets, then every balance, version and position is checked against an independent model;
// and the same idempotency key sent to two instances at once executes once.
// Runs through scripts/with-pg.sh (WALLEX_PG_URL).
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/id_generator.h"
#include "pg_database.h"
#include "service/wallet_service.h"
#include "store/postgres/pg_store.h"

namespace wallex::testing {
namespace {

Money cents(std::int64_t value) { return Money::from_minor(value); }

// One instance: its own store (connection), id generator and writer thread.
struct Instance {
  std::unique_ptr<PgStore> store;
  RandomIdGenerator ids;
  std::unique_ptr<WalletService> service;

  Instance(const std::string& url, const Clock& clock, std::uint64_t seed, ServiceOptions options)
      : ids(seed) {
    auto opened = PgStore::open(url);
    EXPECT_TRUE(opened.ok()) << (opened ? "" : opened.error().message);
    if (!opened) return;
    store = std::move(opened).value();
    options.on_fatal = [](const StoreError& error) { ADD_FAILURE() << "fatal: " << error.message; };
    service = std::make_unique<WalletService>(*store, clock, ids, options);
    EXPECT_TRUE(service->start().ok());
  }

  std::future<Reply> submit(Command command, std::optional<std::string> key = std::nullopt) {
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    service->submit(CommandRequest{std::move(command), std::move(key), "corr"},
                    [promise](Reply&& reply) { promise->set_value(std::move(reply)); });
    return future;
  }
};

class PgServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = PgDatabase::create();
    ASSERT_NE(database_, nullptr);
  }
  void start_instances(int count, ServiceOptions options = {}) {
    for (int i = 0; i < count; ++i) {
      instances_.push_back(std::make_unique<Instance>(database_->url(), clock_, 1000 + i, options));
      ASSERT_NE(instances_.back()->service, nullptr);
    }
  }
  void TearDown() override {
    for (auto& instance : instances_) {
      if (instance->service) instance->service->stop();
    }
    instances_.clear();
  }

  std::unique_ptr<PgDatabase> database_;
  SystemClock clock_;
  std::vector<std::unique_ptr<Instance>> instances_;
};

TEST_F(PgServiceTest, AWalletCreatedByAnotherInstanceIsSeen) {
  start_instances(2);
  ASSERT_EQ(instances_[0]->submit(CreateWallet{"w", "o", cents(500)}).get().status, 201);
  // The second instance loaded nothing at start; it reads "w" from the store before deciding.
  const Reply credited = instances_[1]->submit(CreditWallet{"w", cents(25), {}}).get();
  EXPECT_EQ(credited.status, 201) << credited.body;
  EXPECT_NE(credited.body.find("\"balance\":5.25"), std::string::npos) << credited.body;
  const Reply again = instances_[1]->submit(CreateWallet{"w", "o", cents(0)}).get();
  EXPECT_EQ(again.status, 409) << again.body;
  // A read on the first instance reflects the second's credit at once.
  auto promise = std::make_shared<std::promise<Reply>>();
  auto read = promise->get_future();
  instances_[0]->service->read_wallet(
      "w", [promise](Reply&& reply) { promise->set_value(std::move(reply)); });
  const Reply seen = read.get();
  EXPECT_EQ(seen.status, 200);
  EXPECT_NE(seen.body.find("\"balance\":5.25"), std::string::npos) << seen.body;
  // And its next command on "w" is decided on that state.
  const Reply debited = instances_[0]->submit(DebitWallet{"w", cents(525), {}}).get();
  EXPECT_EQ(debited.status, 201) << debited.body;
  EXPECT_NE(debited.body.find("\"version\":3"), std::string::npos) << debited.body;
}

// Concurrent credits, debits and transfers over a few hot wallets from two instances. Every
// request must succeed or be refused for a business reason (never for contention), and the
// stored result must equal a model built from the replies alone.
TEST_F(PgServiceTest, TwoInstancesOnHotWalletsLoseNothing) {
  constexpr int kWallets = 4;
  constexpr std::int64_t kInitialCents = 20'000;  // low enough that some debits are refused
  constexpr int kClientsPerInstance = 4;
  constexpr int kRoundsPerClient = 12;
  constexpr int kCommandsPerRound = 25;  // submitted together: the writers batch them
  start_instances(2);
  std::vector<std::string> wallets;
  for (int w = 0; w < kWallets; ++w) {
    wallets.push_back("hot-" + std::to_string(w));
    ASSERT_EQ(instances_[w % 2]->submit(CreateWallet{wallets.back(), "o", cents(kInitialCents)})
                  .get()
                  .status,
              201);
  }

  std::mutex model_mutex;
  std::map<std::string, std::int64_t> model;  // balance in cents, from 201 replies only
  std::map<std::string, std::int64_t> model_events;  // events per wallet, from 201 replies
  for (const std::string& id : wallets) {
    model[id] = kInitialCents;
    model_events[id] = 2;  // created + initial credit
  }
  std::atomic<int> ok{0}, insufficient{0}, unexpected{0};
  std::vector<std::thread> clients;
  for (int instance = 0; instance < 2; ++instance) {
    for (int c = 0; c < kClientsPerInstance; ++c) {
      clients.emplace_back([&, instance, c] {
        std::mt19937 random(static_cast<unsigned>(instance * 100 + c));
        for (int round = 0; round < kRoundsPerClient; ++round) {
          struct Sent {
            Command command;
            std::future<Reply> reply;
          };
          std::vector<Sent> sent;
          for (int i = 0; i < kCommandsPerRound; ++i) {
            const std::string& a = wallets[random() % kWallets];
            std::string b = wallets[random() % kWallets];
            while (b == a) b = wallets[random() % kWallets];
            const Money amount = cents(1 + static_cast<std::int64_t>(random() % 5'000));
            Command command;
            switch (random() % 4) {
              case 0: command = CreditWallet{a, amount, {}}; break;
              case 1: command = DebitWallet{a, amount, {}}; break;
              default: command = TransferMoney{a, b, amount, {}, {}}; break;
            }
            auto future = instances_[instance]->submit(command);
            sent.push_back(Sent{command, std::move(future)});
          }
          for (Sent& s : sent) {
            const Reply reply = s.reply.get();
            if (reply.status == 201) {
              ++ok;
              std::lock_guard lock(model_mutex);
              if (const auto* credit = std::get_if<CreditWallet>(&s.command)) {
                model[credit->wallet_id] += credit->amount.minor();
                ++model_events[credit->wallet_id];
              } else if (const auto* debit = std::get_if<DebitWallet>(&s.command)) {
                model[debit->wallet_id] -= debit->amount.minor();
                ++model_events[debit->wallet_id];
              } else {
                const auto& transfer = std::get<TransferMoney>(s.command);
                model[transfer.from_wallet_id] -= transfer.amount.minor();
                model[transfer.to_wallet_id] += transfer.amount.minor();
                ++model_events[transfer.from_wallet_id];
                ++model_events[transfer.to_wallet_id];
              }
            } else if (reply.status == 400 &&
                       reply.body.find("INSUFFICIENT_FUNDS") != std::string::npos) {
              ++insufficient;
            } else {
              ++unexpected;
              ADD_FAILURE() << "unexpected reply " << reply.status << " " << reply.body;
            }
          }
        }
      });
    }
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(ok.load() + insufficient.load(),
            2 * kClientsPerInstance * kRoundsPerClient * kCommandsPerRound);

  auto checker = PgStore::open(database_->url());
  ASSERT_TRUE(checker.ok());
  EventStore& store = *checker.value();
  auto stored = store.read_wallets(wallets);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored.value().size(), wallets.size());
  std::int64_t total = 0;
  for (const WalletState& wallet : stored.value()) {
    EXPECT_EQ(wallet.balance.minor(), model[wallet.id]) << wallet.id;
    EXPECT_EQ(wallet.version + 1, model_events[wallet.id]) << wallet.id;
    total += wallet.balance.minor();
  }
  // Credits and debits change the total; transfers never do.
  std::int64_t expected_total = 0;
  for (const auto& [id, balance] : model) expected_total += balance;
  EXPECT_EQ(total, expected_total);

  // The log: positions 1..head without a gap, each wallet's versions contiguous from 0, and
  // replaying the events gives the stored balances.
  auto events = store.read_events(0, 10'000'000);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(static_cast<std::int64_t>(events.value().size()), store.last_position().value());
  std::map<std::string, std::int64_t> next_version, replayed;
  std::int64_t position = 0;
  for (const StoredEvent& stored_event : events.value()) {
    EXPECT_EQ(stored_event.position, ++position);
    const Event& e = stored_event.event;
    EXPECT_EQ(e.version, next_version[e.wallet_id]++) << e.wallet_id;
    switch (e.type) {
      case EventType::kWalletCreated: break;
      case EventType::kWalletCredited:
      case EventType::kWalletTransferCompleted: replayed[e.wallet_id] += e.amount.minor(); break;
      case EventType::kWalletDebited:
      case EventType::kWalletTransferInitiated: replayed[e.wallet_id] -= e.amount.minor(); break;
    }
  }
  for (const std::string& id : wallets) EXPECT_EQ(replayed[id], model[id]) << id;

  const std::uint64_t conflicts =
      instances_[0]->service->health().conflicts + instances_[1]->service->health().conflicts;
  std::printf("two instances: %d applied, %d insufficient funds, %llu conflicts retried, %lld events\n",
              ok.load(), insufficient.load(), static_cast<unsigned long long>(conflicts),
              static_cast<long long>(position));
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(insufficient.load(), 0);
  EXPECT_GT(conflicts, 0u) << "the instances never contended: the test proved nothing";
}

// The same Idempotency-Key sent to two instances at the same moment: exactly one executes; the
// other replays its reply (found at once, or after its own commit conflicted on the key).
TEST_F(PgServiceTest, TheSameKeyOnTwoInstancesExecutesOnce) {
  constexpr int kRounds = 30;
  start_instances(2);
  ASSERT_EQ(instances_[0]->submit(CreateWallet{"w", "o", cents(0)}).get().status, 201);
  int replays = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string key = "key-" + std::to_string(round);
    auto first = instances_[0]->submit(CreditWallet{"w", cents(100), {}}, key);
    auto second = instances_[1]->submit(CreditWallet{"w", cents(100), {}}, key);
    const Reply a = first.get();
    const Reply b = second.get();
    ASSERT_EQ(a.status, 201) << a.body;
    ASSERT_EQ(b.status, 201) << b.body;
    EXPECT_EQ(a.body, b.body);
    EXPECT_EQ(a.position, b.position);
    EXPECT_NE(a.replayed, b.replayed) << "round " << round << ": exactly one executes";
    replays += (a.replayed ? 1 : 0) + (b.replayed ? 1 : 0);
  }
  EXPECT_EQ(replays, kRounds);
  auto checker = PgStore::open(database_->url());
  ASSERT_TRUE(checker.ok());
  const auto w = checker.value()->read_wallets({"w"}).value().at(0);
  EXPECT_EQ(w.balance.minor(), 100 * kRounds);
  EXPECT_EQ(w.version, kRounds);
}

// The same key with different requests on two instances: one executes, the other is 409.
TEST_F(PgServiceTest, TheSameKeyWithDifferentRequestsOnTwoInstancesIsRefusedOnce) {
  constexpr int kRounds = 20;
  start_instances(2);
  ASSERT_EQ(instances_[0]->submit(CreateWallet{"w", "o", cents(0)}).get().status, 201);
  int executed = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string key = "key-" + std::to_string(round);
    auto first = instances_[0]->submit(CreditWallet{"w", cents(100), {}}, key);
    auto second = instances_[1]->submit(CreditWallet{"w", cents(7), {}}, key);
    const Reply a = first.get();
    const Reply b = second.get();
    EXPECT_EQ((a.status == 201) + (b.status == 201), 1) << a.body << " / " << b.body;
    EXPECT_EQ((a.status == 409) + (b.status == 409), 1) << a.body << " / " << b.body;
    const Reply& refused = a.status == 409 ? a : b;
    EXPECT_NE(refused.body.find("IDEMPOTENCY_KEY_REUSED"), std::string::npos) << refused.body;
    executed += a.status == 201 ? 100 : 7;
  }
  auto checker = PgStore::open(database_->url());
  ASSERT_TRUE(checker.ok());
  const auto w = checker.value()->read_wallets({"w"}).value().at(0);
  EXPECT_EQ(w.balance.minor(), executed);
  EXPECT_EQ(w.version, kRounds);
}

// A key past its retention but not purged yet executes again; the store replaces exactly the
// expired record the writer saw (without that, every attempt would conflict on the key).
TEST_F(PgServiceTest, AnExpiredKeyExecutesAgainOnASharedStore) {
  ServiceOptions options;
  options.idempotency_retention_ms = 1'000;
  options.purge_interval_ms = 3'600'000;  // no purge during the test
  start_instances(2, options);
  ASSERT_EQ(instances_[0]->submit(CreateWallet{"w", "o", cents(0)}).get().status, 201);
  const Reply first = instances_[0]->submit(CreditWallet{"w", cents(100), {}}, "key").get();
  ASSERT_EQ(first.status, 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'100));
  const Reply again = instances_[1]->submit(CreditWallet{"w", cents(100), {}}, "key").get();
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_FALSE(again.replayed);
  EXPECT_GT(again.position, first.position);
  const Reply replay = instances_[0]->submit(CreditWallet{"w", cents(100), {}}, "key").get();
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(replay.position, again.position);
  auto checker = PgStore::open(database_->url());  // each store has one user: its writer
  ASSERT_TRUE(checker.ok());
  EXPECT_EQ(checker.value()->read_wallets({"w"}).value().at(0).balance.minor(), 200);
}

}  // namespace
}  // namespace wallex::testing
