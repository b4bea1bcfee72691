// The Kafka relay on a shared PostgreSQL database (issue 7, part 2).
//
// PgPublishedPosition: the relay's published position in relay_published (migration 2), one row
// shared by every instance. save() only ever raises it (UPDATE ... WHERE position < new), so a
// relay that lost its lease and has not noticed yet can never move it back.
//
// PgLeasedRelay: at most one instance relays at a time: the holder of the relay lease (PgLease,
// kRelayLeaseKey). Every instance tries to take it every lease_retry_interval_ms; the holder
// opens a Relay (its own PgEventLog and PgPublishedPosition) and starts it from the shared
// published position. When the holder dies its session ends, the lock is released, and another
// instance resumes from the published position within about that interval: events after it are
// published again (duplicates, dropped by consumers by position), none is skipped.
//
// Why tailing the log by position is safe for the relay: committed positions are always the
// gap-free prefix 1..head (docs/postgresql.md), so reading `position > last sent` never passes
// over an event that commits later.
//
// On an instance that does not hold the lease, stats() reports state "standby" with the shared
// published position, and check_brokers() asks the cluster for its metadata on a client of its
// own (BrokerChecker), so every instance's GET /health/kafka reports real connectivity.
//
// Thread safety: stats(), check_brokers(), notify_head() from any thread; start()/stop() from one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "kafka/broker_checker.h"
#include "kafka/kafka_monitor.h"
#include "kafka/published_position_store.h"
#include "kafka/relay.h"

namespace wallex {

class PgConnection;
class PgEventLog;
class PgLease;

class PgPublishedPosition final : public PublishedPositionStore {
 public:
  static Result<std::unique_ptr<PgPublishedPosition>, StoreError> open(const std::string& url);
  ~PgPublishedPosition() override;
  Result<std::int64_t, StoreError> load() override;
  Status<StoreError> save(std::int64_t position, TimestampMs saved_at_ms) override;

 private:
  explicit PgPublishedPosition(std::unique_ptr<PgConnection> connection);
  std::unique_ptr<PgConnection> connection_;
};

class PgLeasedRelay final : public KafkaMonitor {
 public:
  static constexpr int kLeaseRetryIntervalMs = 1'000;
  PgLeasedRelay(std::string url, std::string instance_name, const Clock& clock,
                RelayOptions options);
  ~PgLeasedRelay() override;
  PgLeasedRelay(const PgLeasedRelay&) = delete;
  PgLeasedRelay& operator=(const PgLeasedRelay&) = delete;

  // Checks the options (an invalid librdkafka property fails here, on every instance) and the
  // published position's table.
  Status<std::string> open();
  void start();
  void stop();
  void notify_head(std::int64_t last_position);
  bool relaying() const { return relaying_.load(); }

  RelayStats stats() const override;
  void check_brokers(std::function<void(BrokerCheck)> done) override;

 private:
  void run();
  void manage_lease();
  void stop_relay();

  const std::string url_;
  const std::string instance_name_;
  const Clock& clock_;
  const RelayOptions options_;
  // Answers GET /health/kafka while this instance is a standby (the relay answers it when this
  // instance relays): a standby does not publish, but whether it could reach the cluster is
  // still a real metadata request.
  BrokerChecker standby_checker_;

  // The lease thread only.
  std::unique_ptr<PgLease> lease_;
  std::unique_ptr<PgEventLog> relay_log_;
  std::unique_ptr<PgPublishedPosition> relay_positions_;
  std::unique_ptr<PgPublishedPosition> standby_positions_;

  std::atomic<bool> relaying_{false};
  std::atomic<std::int64_t> standby_published_{0};
  std::atomic<std::int64_t> head_{0};

  mutable std::mutex mutex_;  // guards relay_ (the pointer) and the wake state
  std::unique_ptr<Relay> relay_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wallex
