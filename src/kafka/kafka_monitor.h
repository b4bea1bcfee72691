// KafkaMonitor: what the HTTP layer may ask of the Kafka side (GET /health/kafka and
// /health/kafka/stats) without including librdkafka.
//
// Thread safety: both calls may be made from any thread; neither blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace wallex {

// The consumer side, as Kafka reports it (kafka/group_watch.h).
struct GroupLag {
  std::string group;
  std::int64_t lag = -1;         // -1: not known yet, or the last query failed
  int committed_partitions = 0;  // partitions where the group committed an offset
  bool operator==(const GroupLag&) const = default;
};

struct ConsumerSideStats {
  std::int64_t dead_letters = -1;  // -1: not known yet, or the last query failed
  std::vector<GroupLag> groups;
  std::int64_t age_ms = -1;  // since the last successful refresh; -1: never
  std::string last_error;
};

struct RelayStats {
  // "connecting" (the cluster has not answered, or wallet-events does not exist and cannot be
  // created: nothing is published until it does), "publishing",
  // "retrying" (a delivery failed; resending from the published position), "stopped".
  std::string state;
  std::int64_t published_position = 0;         // every event up to it is confirmed by Kafka
  std::int64_t saved_position = 0;             // the published position as last stored in relay.db
  std::int64_t head_position = 0;              // the log's last position as last seen
  std::int64_t backlog = 0;                    // head_position − published_position
  std::int64_t in_flight = 0;                  // handed to the producer, not confirmed yet
  std::int64_t oldest_unpublished_age_ms = 0;  // age of the oldest event not published; 0 if none
  double publish_rate_per_s = 0;               // confirmed events per second, recent
  std::uint64_t published_events = 0;          // confirmed since start (resends included)
  std::uint64_t delivery_errors = 0;           // failed delivery reports and refused produces
  std::string last_error;                      // of the last failure; empty if none
  // Time from the writer's decision (the event's occurredAt, before its commit's fsync) to
  // Kafka's acknowledgement, over every confirmed event since start; 0 before the first.
  std::int64_t ack_lag_p50_ms = 0;
  std::int64_t ack_lag_p99_ms = 0;
  std::int64_t ack_lag_max_ms = 0;
  ConsumerSideStats consumers;  // dead letters and consumer-group lag
};

struct BrokerCheck {
  bool ok = false;
  int brokers = 0;  // brokers in the cluster's metadata answer
  std::string error;
  std::int64_t elapsed_ms = 0;
};

class KafkaMonitor {
 public:
  virtual ~KafkaMonitor() = default;
  virtual RelayStats stats() const = 0;
  // Asks the cluster for its metadata now (never a cached answer), with a short timeout, and
  // calls `done` exactly once with the outcome, on another thread. Concurrent asks share one
  // request.
  virtual void check_brokers(std::function<void(BrokerCheck)> done) = 0;
};

}  // namespace wallex
