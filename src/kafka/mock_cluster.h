// MockCluster: librdkafka's in-process mock Kafka cluster (rdkafka_mock.h), for `wallex
// dev-kafka` and tests. A TEST STAND-IN: data lives in memory, transactions are not enforced,
// there is no CreateTopics; listeners are on random 127.0.0.1 ports (librdkafka 2.0.2 cannot
// choose them), so the bootstrap string must be passed to clients.
//
// Thread safety: the mock API is called under one mutex, so any thread may call these.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"

namespace wallex {

class MockCluster {
 public:
  // Starts `brokers` brokers (1..9) and, unless told not to, creates wallet-events
  // (10 partitions) and wallet-events-dlq (5), each with replication factor min(brokers, 3).
  static Result<std::unique_ptr<MockCluster>, std::string> start(int brokers,
                                                                 bool create_topics = true);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // "127.0.0.1:port,127.0.0.1:port,..."
  const std::string& bootstrap() const;
  int brokers() const;
  // Broker ids are 1..brokers(). A down broker closes its connections and refuses new ones.
  Status<std::string> set_broker_down(int broker_id);
  Status<std::string> set_broker_up(int broker_id);
  Status<std::string> create_topic(const std::string& name, int partitions);

  struct Impl;

 private:
  explicit MockCluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
