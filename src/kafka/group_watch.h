// GroupWatch: what GET /health/kafka/stats reports about the consumer side, refreshed on a
// thread of its own every interval_ms (an HTTP request never waits for Kafka):
//  - the dead-letter count: over the partitions of wallet-events-dlq, high watermark − low;
//  - per consumer group, its lag: over the partitions of wallet-events, high watermark − the
//    group's committed offset (the low watermark when it committed none). The consumer-group
//    projectors commit Kafka offsets only after their read-store transaction, so a lag of 0
//    means every published event is applied and stored.
//
// Thread safety: snapshot() from any thread; start()/stop() from the owner's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/kafka_message.h"
#include "kafka/kafka_monitor.h"

namespace wallex {

struct GroupWatchOptions {
  std::string brokers;
  std::vector<std::pair<std::string, std::string>> config;  // librdkafka properties
  std::vector<std::string> groups = {"ledger-projector", "read-model-projector"};
  std::string topic = std::string(kEventsTopic);
  int partitions = kEventsTopicPartitions;
  std::string dead_letter_topic = std::string(kDeadLetterTopic);
  int dead_letter_partitions = kDeadLetterTopicPartitions;
  int interval_ms = 2'000;
  int request_timeout_ms = 2'000;  // of each watermark or committed-offsets query
};

class GroupWatch {
 public:
  explicit GroupWatch(GroupWatchOptions options);
  ~GroupWatch();
  GroupWatch(const GroupWatch&) = delete;
  GroupWatch& operator=(const GroupWatch&) = delete;

  Status<std::string> open();  // creates the clients (no network traffic yet)
  void start();
  void stop();
  ConsumerSideStats snapshot() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
