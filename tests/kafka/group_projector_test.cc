// Consumer-group projectors in process, against librdkafka's mock cluster on real sockets: two
// members of one group share wallet-events, where every event was published twice (a relay
// resend), and build a read store equal, row by row, to the one the same projectors build from
// the events in log order.
#include "kafka/group_projector.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "kafka/kafka_message.h"
#include "kafka/mock_cluster.h"
#include "projection/compare.h"
#include "projection/projectors.h"
#include "store/event_codec.h"
#include "store/sqlite/sqlite_read_store.h"

namespace wallex {
namespace {

constexpr int kWallets = 12;

// A log of kWallets wallets: created, credited, then a ring of transfers, in position order.
std::vector<LoggedEvent> make_log() {
  std::vector<LoggedEvent> log;
  std::vector<std::int64_t> versions(kWallets, 0);
  const auto add = [&log](Event event, std::optional<std::string> key) {
    const auto position = static_cast<std::int64_t>(log.size()) + 1;
    event.occurred_at_ms = 1'795'000'000'000 + position;
    EventMetadata metadata{"corr-" + std::to_string(position), std::move(key)};
    log.push_back(logged_event(StoredEvent{position, std::move(event), std::move(metadata)}));
  };
  const auto wallet = [](int i) { return "gp-wallet-" + std::to_string(i); };
  for (int i = 0; i < kWallets; ++i) {
    Event created;
    created.type = EventType::kWalletCreated;
    created.wallet_id = wallet(i);
    created.owner_id = "owner-" + std::to_string(i % 3);
    add(created, std::nullopt);
    Event credited;
    credited.type = EventType::kWalletCredited;
    credited.wallet_id = wallet(i);
    credited.version = ++versions[static_cast<std::size_t>(i)];
    credited.amount = Money::parse("50.00").value();
    credited.description = "Initial balance";
    add(credited, "create-" + wallet(i));
  }
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < kWallets; ++i) {
      const int to = (i + round + 1) % kWallets;
      if (to == i) continue;
      const std::string transfer = "t-" + std::to_string(round) + "-" + std::to_string(i);
      Event out;
      out.type = EventType::kWalletTransferInitiated;
      out.wallet_id = wallet(i);
      out.version = ++versions[static_cast<std::size_t>(i)];
      out.amount = Money::parse("1.10").value();
      out.description = "Transfer to wallet " + wallet(to);
      out.transfer_id = transfer;
      out.counterparty_id = wallet(to);
      add(out, transfer);
      Event in = out;
      in.type = EventType::kWalletTransferCompleted;
      in.wallet_id = wallet(to);
      in.version = ++versions[static_cast<std::size_t>(to)];
      in.description = "Transfer from wallet " + wallet(i);
      in.counterparty_id = wallet(i);
      add(in, transfer);
    }
  }
  return log;
}

void produce(const std::string& bootstrap, const std::vector<LoggedEvent>& log, int copies) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [key, value] :
       {std::pair{"bootstrap.servers", bootstrap.c_str()}, std::pair{"enable.idempotence", "true"},
        std::pair{"acks", "all"}, std::pair{"partitioner", "murmur2_random"},
        std::pair{"log_level", "3"}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf, key, value, error, sizeof error), RD_KAFKA_CONF_OK) << error;
  }
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  ASSERT_NE(producer, nullptr) << error;
  for (int copy = 0; copy < copies; ++copy) {
    for (const LoggedEvent& event : log) {
      const KafkaMessage message = kafka_message_for(event);
      rd_kafka_headers_t* headers = rd_kafka_headers_new(message.headers.size());
      for (const auto& [name, value] : message.headers) {
        rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
      }
      const char* key = message.key.data();
      const std::size_t key_size = message.key.size();
      ASSERT_EQ(rd_kafka_producev(
                    producer, RD_KAFKA_V_TOPIC(std::string(kEventsTopic).c_str()),
                    RD_KAFKA_V_KEY(key, key_size),
                    RD_KAFKA_V_VALUE(const_cast<char*>(message.value.data()), message.value.size()),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                    RD_KAFKA_V_END),
                RD_KAFKA_RESP_ERR_NO_ERROR);
    }
  }
  ASSERT_EQ(rd_kafka_flush(producer, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
}

class GroupProjectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wallex-gp-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  SystemClock clock_;
};

TEST_F(GroupProjectorTest, TwoMembersApplyEveryEventOnceDespiteCopies) {
  auto cluster = MockCluster::start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.error();
  const std::vector<LoggedEvent> log = make_log();
  produce(cluster.value()->bootstrap(), log, 2);

  // The reference: the same projectors over the log in position order.
  auto reference =
      SqliteReadStore::open_file(dir_ + "/reference.db", SqliteReadStore::Access::kReadWrite);
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  {
    auto projectors = make_projectors();
    ASSERT_TRUE(reference.value()->begin_write().ok());
    for (const LoggedEvent& event : log) {
      for (auto& projector : projectors) {
        ASSERT_TRUE(projector->apply(event, *reference.value()).ok()) << event.position;
      }
    }
    for (auto& projector : projectors) ASSERT_TRUE(projector->flush(*reference.value()).ok());
    ASSERT_TRUE(reference.value()->commit().ok());
  }

  const std::string kafka_db = dir_ + "/kafka.db";
  GroupProjectorOptions options;
  options.brokers = cluster.value()->bootstrap();
  options.group = "group-projector-test";
  options.config = {{"session.timeout.ms", "4000"}, {"heartbeat.interval.ms", "300"}};
  options.batch_messages_max = 7;  // many transactions
  struct Member {
    std::unique_ptr<SqliteReadStore> store;
    std::unique_ptr<GroupProjector> projector;
    std::thread thread;
    Status<std::string> outcome = Ok{};
  };
  std::vector<Member> members(2);
  for (Member& member : members) {
    auto store = SqliteReadStore::open_file(kafka_db, SqliteReadStore::Access::kReadWrite);
    ASSERT_TRUE(store.ok()) << store.error().message;
    member.store = std::move(store).value();
    member.projector = std::make_unique<GroupProjector>(*member.store, *member.store,
                                                        make_projectors(), clock_, options);
    ASSERT_TRUE(member.projector->open().ok());
  }
  for (Member& member : members) {
    member.thread = std::thread([&member] { member.outcome = member.projector->run(); });
  }

  // Done when every message of every partition is behind the stored offsets.
  auto watcher = SqliteReadStore::open_file(kafka_db, SqliteReadStore::Access::kReadOnly);
  ASSERT_TRUE(watcher.ok()) << watcher.error().message;
  const std::int64_t messages = static_cast<std::int64_t>(log.size()) * 2;
  std::int64_t stored = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (stored < messages && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto offsets = watcher.value()->consumer_offsets(options.group, kEventsTopic);
    ASSERT_TRUE(offsets.ok());
    stored = 0;
    for (const PartitionOffset& offset : offsets.value()) stored += offset.next_offset;
  }
  for (Member& member : members) member.projector->request_stop();
  for (Member& member : members) member.thread.join();
  ASSERT_EQ(stored, messages);

  std::uint64_t applied = 0;
  std::uint64_t duplicates = 0;
  for (Member& member : members) {
    EXPECT_TRUE(member.outcome.ok()) << member.outcome.error();
    applied += member.projector->stats().applied;
    duplicates += member.projector->stats().duplicates;
    EXPECT_EQ(member.projector->stats().dead_letters, 0u);
  }
  EXPECT_EQ(applied, log.size());     // each event once
  EXPECT_EQ(duplicates, log.size());  // each copy skipped

  auto compared = compare_read_stores(
      *reference.value(), *watcher.value(),
      {ProjectorId::kReadModel, ProjectorId::kLedger, ProjectorId::kWalletEvents});
  ASSERT_TRUE(compared.ok()) << compared.error().message;
  for (const std::string& difference : compared.value().differences) ADD_FAILURE() << difference;
  EXPECT_EQ(compared.value().difference_count, 0);
  ASSERT_EQ(compared.value().summary.size(), 5u);
  EXPECT_EQ(
      compared.value().summary[2],
      "ledger entry at position: " + std::to_string(log.size() - kWallets) + " rows on both sides");
}

// Members of one group start at once and open the same new store: each open must succeed (the
// schema is created once, the switch to WAL of one must not fail the other).
TEST_F(GroupProjectorTest, MembersMayOpenOneNewStoreAtOnce) {
  for (int round = 0; round < 30; ++round) {
    const std::string path = dir_ + "/race-" + std::to_string(round) + ".db";
    std::vector<std::string> errors(4);
    std::vector<std::thread> openers;
    for (std::size_t i = 0; i < errors.size(); ++i) {
      openers.emplace_back([&path, &errors, i] {
        auto store = SqliteReadStore::open_file(path, SqliteReadStore::Access::kReadWrite);
        if (!store) errors[i] = store.error().message;
      });
    }
    for (std::thread& opener : openers) opener.join();
    for (const std::string& error : errors) EXPECT_EQ(error, "") << "round " << round;
  }
}

}  // namespace
}  // namespace wallex
