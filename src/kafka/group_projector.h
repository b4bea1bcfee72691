// GroupProjector: a consumer-group projector (`wallex project --source kafka`). Reads
// `wallet-events` as a member of a consumer group and applies each event through the same
// Projector implementations as the in-process runner, into a read store of its own.
//
//   poll ≤ batch_messages_max messages ─▶ ONE read-store transaction:
//     fence: each partition's stored next offset must be the one this member last saw
//     per message: decode ─▶ per-wallet version check (duplicate: skip; gap: failure)
//                  ─▶ every projector's apply()
//     flush the projectors, store each wallet's applied version and each partition's next offset
//   commit ─▶ then commit the Kafka offsets (reported as lag; never read back)
//
// Order: Kafka orders a wallet's events (one key, one partition), not the log. Every projector
// only needs its wallet's earlier events: a state is per wallet, and a transfer's two events are
// applied to their own wallets independently (TRANSFER_OUT needs only the source's history,
// TRANSFER_IN only the destination's), so per-partition order is enough.
//
// Exactly once: the read store, not Kafka, says where a partition resumes. On assignment the
// member positions each partition at the stored next offset; every transaction first re-reads
// those offsets under the write lock and gives the batch up (repositioning) when another member
// moved one meanwhile, so two members can never both apply a message; a redelivered event
// (a relay resend, a rebalance) is at or below its wallet's stored version and skipped. A crash
// at any point loses the open transaction only: rows, versions and offsets go back together.
//
// Failures: a message that cannot be applied (undecodable, a version gap, a projection that
// fails) is retried max_attempts times in all, the batch's other messages with it, then sent to
// the dead-letter topic with its key, value and headers plus dlq-* headers, and the transaction
// that moves past it records it (consumer_dead_letters); it is produced and confirmed (acks=all,
// idempotent producer) BEFORE that transaction, so it is never lost, and may be sent twice after
// a crash between the two (at least once). A failure of the read store itself (I/O, busy, full)
// is not the message's fault: the batch is retried after store_retry_delay_ms, forever, and
// kIo stops the projector (as everywhere in Wallex, a failed write is never retried blindly).
//
// Thread safety: run() on one thread; request_stop() from any thread or a signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "kafka/consumer_state_store.h"
#include "kafka/kafka_message.h"
#include "projection/projector.h"
#include "projection/read_store.h"

namespace wallex {

inline constexpr int kMaxAttemptsDefault = 3;

struct GroupProjectorOptions {
  std::string brokers;
  std::string group;
  // librdkafka properties for the consumer and the dead-letter producer, after Wallex's defaults.
  std::vector<std::pair<std::string, std::string>> config;
  std::string topic = std::string(kEventsTopic);
  std::string dead_letter_topic = std::string(kDeadLetterTopic);
  int max_attempts = kMaxAttemptsDefault;    // tries of a failing message before the DLQ (1..100)
  std::size_t batch_messages_max = 2'000;    // messages per transaction
  int poll_timeout_ms = 100;                 // longest wait for the first message of a batch
  int retry_delay_ms = 100;                  // before try n+1 of a failing message: n × this
  int store_retry_delay_ms = 1'000;          // after a read-store failure
  int dead_letter_retry_delay_ms = 1'000;    // after a failed dead-letter delivery
  std::size_t cached_wallets_max = 200'000;  // wallet versions kept in memory between batches
  int idle_exit_ms = 0;                      // > 0: run() returns after this long without messages
                                             // once at least one was applied (benchmarks, tools)
  int progress_interval_ms = 10'000;         // a progress line this often
};

struct GroupProjectorStats {
  std::uint64_t applied = 0;       // events applied (committed)
  std::uint64_t duplicates = 0;    // redelivered events skipped (committed)
  std::uint64_t dead_letters = 0;  // messages sent to the DLQ by this process
  std::uint64_t batches = 0;       // committed transactions
  std::uint64_t rebalances = 0;    // assignments received
  std::uint64_t fenced = 0;        // batches given up because another member moved a partition
  std::uint64_t retries = 0;       // failed tries of a message
  // From the first message polled to the last commit (throughput = applied / busy_ms).
  std::int64_t busy_ms = 0;
};

class GroupProjector {
 public:
  // `store` and `state` are usually one SqliteReadStore; the projectors write through `store`.
  GroupProjector(ReadStore& store, ConsumerStateStore& state,
                 std::vector<std::unique_ptr<Projector>> projectors, const Clock& clock,
                 GroupProjectorOptions options);
  ~GroupProjector();
  GroupProjector(const GroupProjector&) = delete;
  GroupProjector& operator=(const GroupProjector&) = delete;

  // Creates the consumer and the dead-letter producer and subscribes. Fails on an invalid
  // property or option.
  Status<std::string> open();
  // Consumes until request_stop() (or idle_exit_ms); then leaves the group. Fails only on a
  // fatal read-store error (kIo, kCorrupt outside a message, kSchemaTooNew).
  Status<std::string> run();
  void request_stop() { stopping_.store(true); }
  GroupProjectorStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stopping_{false};
};

}  // namespace wallex
