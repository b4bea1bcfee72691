// The relay in process, against librdkafka's mock cluster on real sockets, with a real embedded
// store and writer; an independent librdkafka consumer reads the topic back.
#include "kafka/relay.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "common/id_generator.h"
#include "kafka/mock_cluster.h"
#include "service/wallet_service.h"
#include "store/sqlite/sqlite_read_store.h"
#include "store/sqlite/sqlite_relay_checkpoint.h"
#include "store/sqlite/sqlite_store.h"

namespace wallex {
namespace {

struct Consumed {
  int partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::int64_t position = 0;
};

// Every message of wallet-events, per partition in offset order (assign, no group join).
std::vector<Consumed> consume_all(const std::string& bootstrap) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [key, value] :
       {std::pair{"bootstrap.servers", bootstrap.c_str()},
        std::pair{"group.id", "relay-test-reader"}, std::pair{"enable.auto.commit", "false"},
        std::pair{"enable.partition.eof", "true"}, std::pair{"log_level", "3"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, key, value, error, sizeof error), RD_KAFKA_CONF_OK) << error;
  }
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  EXPECT_NE(consumer, nullptr) << error;
  if (consumer == nullptr) return {};
  rd_kafka_topic_partition_list_t* partitions =
      rd_kafka_topic_partition_list_new(kEventsTopicPartitions);
  for (int p = 0; p < kEventsTopicPartitions; ++p) {
    rd_kafka_topic_partition_list_add(partitions, std::string(kEventsTopic).c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  EXPECT_EQ(rd_kafka_assign(consumer, partitions), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(partitions);
  std::vector<Consumed> out;
  std::set<int> at_end;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (at_end.size() < static_cast<std::size_t>(kEventsTopicPartitions) &&
         std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 200);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert(message->partition);
    } else if (message->err) {
      ADD_FAILURE() << "consume: " << rd_kafka_message_errstr(message);
    } else {
      Consumed c;
      c.partition = message->partition;
      c.offset = message->offset;
      c.key.assign(static_cast<const char*>(message->key), message->key_len);
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "position", &value, &size) ==
              RD_KAFKA_RESP_ERR_NO_ERROR) {
        c.position = std::stoll(std::string(static_cast<const char*>(value), size));
      }
      out.push_back(std::move(c));
    }
    rd_kafka_message_destroy(message);
  }
  EXPECT_EQ(at_end.size(), static_cast<std::size_t>(kEventsTopicPartitions))
      << "did not reach the end";
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return out;
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wallex-relay-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto store = SqliteStore::open(dir_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
    auto cluster = MockCluster::start(3, !without_topics_);
    ASSERT_TRUE(cluster.ok()) << cluster.error();
    cluster_ = std::move(cluster).value();
    ServiceOptions options;
    options.on_commit = [this](std::int64_t last) {
      if (relay_ready_.load()) relay_->notify_head(last);
    };
    service_ = std::make_unique<WalletService>(*store_, clock_, ids_, options);
    ASSERT_TRUE(service_->start().ok());
  }
  void TearDown() override {
    service_->stop();
    if (relay_) relay_->stop();
    relay_.reset();
    checkpoint_.reset();
    log_.reset();
    service_.reset();
    store_.reset();
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start_relay(std::vector<std::pair<std::string, std::string>> config = {}) {
    auto log = SqliteEventLog::open(dir_);
    ASSERT_TRUE(log.ok());
    log_ = std::move(log).value();
    auto checkpoint = SqliteRelayCheckpoint::open(dir_);
    ASSERT_TRUE(checkpoint.ok());
    checkpoint_ = std::move(checkpoint).value();
    RelayOptions options;
    options.brokers = cluster_->bootstrap();
    options.config = std::move(config);
    options.retry_delay_ms = 200;
    relay_ = std::make_unique<Relay>(*log_, *checkpoint_, clock_, options);
    auto opened = relay_->open();
    ASSERT_TRUE(opened.ok()) << opened.error();
    relay_->start();
    relay_ready_.store(true);
  }

  int run(Command command) {
    std::promise<int> status;
    service_->submit(CommandRequest{std::move(command), std::nullopt, "corr"},
                     [&status](Reply&& reply) { status.set_value(reply.status); });
    return status.get_future().get();
  }

  // Wallets w0..w{n-1} with money, then credits, debits and transfers among them.
  void workload(int wallets, int operations, const std::string& prefix) {
    auto id = [&](int i) { return prefix + std::to_string(i % wallets); };
    for (int i = 0; i < wallets; ++i) {
      ASSERT_EQ(run(CreateWallet{id(i), "owner", Money::parse("50").value()}), 201);
    }
    for (int n = 0; n < operations; ++n) {
      int status = 0;
      switch (n % 3) {
        case 0:
          status = run(CreditWallet{id(n), Money::parse("1.10").value(), std::nullopt});
          break;
        case 1:
          status = run(DebitWallet{id(n), Money::parse("0.40").value(), std::nullopt});
          break;
        default:
          status = run(TransferMoney{id(n), id(n + 1), Money::parse("0.25").value(), std::nullopt,
                                     ids_.next_uuid()});
      }
      ASSERT_EQ(status, 201) << "operation " << n;
    }
  }

  RelayStats wait_published(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const std::int64_t head = service_->health().last_position;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    RelayStats stats = relay_->stats();
    while (stats.published_position < head && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      stats = relay_->stats();
    }
    EXPECT_EQ(stats.published_position, head) << stats.last_error;
    return stats;
  }

  // Every position 1..head at least once; each wallet on one partition; the first copies of a
  // wallet's events in log order. Returns the number of duplicates.
  std::size_t check_topic(std::int64_t head) {
    const std::vector<Consumed> messages = consume_all(cluster_->bootstrap());
    std::map<std::int64_t, int> copies;
    std::map<std::string, std::set<int>> partitions;
    std::map<std::string, std::int64_t> last_first_copy;
    for (const Consumed& m : messages) {  // per partition, in offset order
      const bool first = copies[m.position]++ == 0;
      partitions[m.key].insert(m.partition);
      if (first) {
        EXPECT_GT(m.position, last_first_copy[m.key]) << m.key << " out of order";
        last_first_copy[m.key] = m.position;
      }
    }
    for (std::int64_t p = 1; p <= head; ++p) EXPECT_GE(copies[p], 1) << "position " << p << " lost";
    EXPECT_EQ(copies.size(), static_cast<std::size_t>(head)) << "a position that is not in the log";
    for (const auto& [key, set] : partitions) EXPECT_EQ(set.size(), 1u) << key;
    return messages.size() - copies.size();
  }

  bool without_topics_ = false;  // set before SetUp: the cluster starts with no topic
  std::string dir_;
  SystemClock clock_;
  RandomIdGenerator ids_{7};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<MockCluster> cluster_;
  std::unique_ptr<WalletService> service_;
  std::unique_ptr<SqliteEventLog> log_;
  std::unique_ptr<SqliteRelayCheckpoint> checkpoint_;
  std::unique_ptr<Relay> relay_;
  std::atomic<bool> relay_ready_{false};
};

TEST_F(RelayTest, PublishesEveryEventOnceInOrderAndSavesThePosition) {
  workload(10, 60, "a");  // before the relay starts: it catches up from position 0
  start_relay();
  workload(15, 150, "b");
  const RelayStats stats = wait_published();
  const std::int64_t head = service_->health().last_position;
  EXPECT_EQ(stats.backlog, 0);
  EXPECT_EQ(stats.delivery_errors, 0u);
  EXPECT_EQ(check_topic(head), 0u);
  relay_->stop();
  EXPECT_EQ(checkpoint_->load().value(), head);
}

TEST_F(RelayTest, ExpiredDeliveriesAreSentAgainWithoutAGap) {
  // Messages that expire after 1.5 s while every broker is down: the relay must wait for every
  // report, then resend from the published position.
  start_relay({{"message.timeout.ms", "1500"}});
  workload(8, 30, "c");
  const std::int64_t before = wait_published().published_position;
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(cluster_->set_broker_down(b).ok());
  workload(8, 90, "d");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (relay_->stats().delivery_errors == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  RelayStats during = relay_->stats();
  EXPECT_GT(during.delivery_errors, 0u);
  EXPECT_GT(during.backlog, 0);
  EXPECT_EQ(during.published_position, before);
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(cluster_->set_broker_up(b).ok());
  wait_published();
  check_topic(service_->health().last_position);
}

}  // namespace
}  // namespace wallex

namespace wallex {
namespace {

class RelayWithoutTopicsTest : public RelayTest {
 protected:
  RelayWithoutTopicsTest() { without_topics_ = true; }
};

TEST_F(RelayWithoutTopicsTest, WaitsForItsTopicRatherThanLetTheBrokerCreateIt) {
  // The mock cluster has no CreateTopics: the relay's attempt fails (after the admin request's
  // timeout). It must not publish into a topic the broker would auto-create with its default
  // partition count: it waits, reporting why, and publishes once the topic exists.
  workload(5, 20, "e");
  start_relay();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (relay_->stats().last_error.find("cannot be created") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  RelayStats waiting = relay_->stats();
  EXPECT_NE(waiting.last_error.find("does not exist and cannot be created"), std::string::npos)
      << waiting.last_error;
  EXPECT_EQ(waiting.state, "connecting");
  EXPECT_EQ(waiting.published_position, 0);
  EXPECT_EQ(waiting.backlog, service_->health().last_position);
  ASSERT_TRUE(cluster_->create_topic(std::string(kEventsTopic), kEventsTopicPartitions).ok());
  const RelayStats stats = wait_published(std::chrono::seconds(60));
  EXPECT_EQ(stats.state, "publishing");
  EXPECT_EQ(stats.delivery_errors, 0u);
  EXPECT_EQ(check_topic(service_->health().last_position), 0u);  // 10 partitions, in order
}

}  // namespace
}  // namespace wallex
