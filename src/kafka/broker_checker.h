// BrokerChecker: answers "can this process reach the Kafka cluster now?" with a metadata request
// on a client of its own (never a cached flag, never queued behind a producer's messages). Used
// by the relay for GET /health/kafka, and by a PostgreSQL instance that is a standby for the
// relay lease (it does not relay, but its operators still ask whether it could).
//
// Thread safety: check() from any thread; open(), start(), stop() from the owner's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "kafka/kafka_monitor.h"

namespace wallex {

struct BrokerCheckerOptions {
  std::string brokers;                                      // bootstrap.servers
  std::vector<std::pair<std::string, std::string>> config;  // --kafka-config, applied last
  int metadata_timeout_ms = 1'000;                          // of one metadata request
};

class BrokerChecker {
 public:
  static constexpr std::size_t kWaitersMax = 1'000;  // checks waiting at once; more are refused

  explicit BrokerChecker(BrokerCheckerOptions options);
  ~BrokerChecker();
  BrokerChecker(const BrokerChecker&) = delete;
  BrokerChecker& operator=(const BrokerChecker&) = delete;

  // Creates the client (no network traffic yet); fails on an invalid property.
  Status<std::string> open();
  void start();
  // Answers every waiting check ("stopping") and joins.
  void stop();
  // Calls `done` exactly once, on the checker's thread (or at once when it is not running or
  // too many checks wait); checks that wait together share one metadata request.
  void check(std::function<void(BrokerCheck)> done);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
