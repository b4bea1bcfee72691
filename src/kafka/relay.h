// Relay: publishes the event log to Kafka, after commit, at least once, in log order.
//
//   writer ── on_commit(last position) ──▶ notify_head() ──▶ relay thread      ◀── poll 500 ms
//     read ≤ read_batch_max events after the last one sent (own read-only connection)
//     produce each to `wallet-events`: key = wallet id, value and headers of
//       docs/kafka-format.md (idempotent producer, acks=all, small linger)
//     delivery reports ─▶ DeliveryWindow: the published position is the end of the contiguous
//       run of confirmed events ─▶ saved to relay.db (PublishedPositionStore) every 100 ms
//
// Order: all events of a wallet carry the same key, so they go to one partition (murmur2, like
// the Java client), in log order; the idempotent producer keeps that order across retries and
// never writes a retried batch twice within one producer session.
//
// Outages: messages never expire (message.timeout.ms=0 unless configured otherwise), so a broker
// outage only stops delivery reports: at most in_flight_max events wait in the producer, the
// relay stops reading, the backlog (head − published) grows and is reported, and it drains in
// order when the broker returns. Commands never wait for the relay: it only reads the log.
// A failed delivery (a permanent error, or an expiry when message.timeout.ms is set) makes the
// relay wait for every outstanding report, then resend everything after the published position
// (duplicates, which consumers drop by position; never a gap).
//
// Thread safety: notify_head(), stats() and check_brokers() from any thread; open(), start(),
// stop() from the owner's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "kafka/kafka_message.h"
#include "kafka/kafka_monitor.h"
#include "kafka/published_position_store.h"
#include "projection/event_log.h"

namespace wallex {

struct RelayOptions {
  std::string brokers;  // bootstrap.servers
  // librdkafka properties applied after Wallex's defaults (--kafka-config key=value).
  std::vector<std::pair<std::string, std::string>> config;
  std::string topic = std::string(kEventsTopic);
  std::size_t in_flight_max = 50'000;  // events handed to the producer and not yet confirmed
  std::size_t read_batch_max = 5'000;  // events read from the log at once
  int poll_interval_ms = 500;          // looks at the log even without notify_head()
  int save_interval_ms = 100;          // the published position is stored at most this often
  int retry_delay_ms = 1'000;          // after a failure: unreachable broker, failed delivery
  int metadata_timeout_ms = 1'000;     // of a check_brokers() request
  int stop_flush_ms = 5'000;           // on stop(): waits this long for outstanding reports
  bool create_topics = true;           // creates wallet-events and wallet-events-dlq if missing
  bool watch_consumers = true;         // reports dead letters and consumer-group lag (stats())
  int consumer_stats_interval_ms = 2'000;
};

class Relay final : public KafkaMonitor {
 public:
  Relay(EventLog& log, PublishedPositionStore& positions, const Clock& clock, RelayOptions options);
  ~Relay() override;
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Creates the producer (no network traffic yet) and loads the published position. Fails on
  // an invalid librdkafka property or an unreadable relay.db.
  Status<std::string> open();
  void start();
  // Waits up to stop_flush_ms for outstanding deliveries, saves the published position, joins.
  void stop();

  void notify_head(std::int64_t last_position);
  RelayStats stats() const override;
  void check_brokers(std::function<void(BrokerCheck)> done) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
