// ConsumerStateStore: what a consumer-group projector (kafka/group_projector.h) keeps beside the
// rows it writes, in the SAME read-store transaction as those rows, so that after any crash or
// rebalance rows, offsets and versions agree:
//  - per (group, topic, partition): the next offset to read (the source of truth for where a
//    partition resumes; Kafka's committed offsets are only reported, for lag);
//  - per (group, wallet): the last version applied (the de-duplication key of redeliveries);
//  - per group: the messages sent to the dead-letter topic.
//
// Thread safety: none; the writes happen inside the read store's write transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace wallex {

struct PartitionOffset {
  int partition = 0;
  std::int64_t next_offset = 0;  // every message before it is applied, skipped or dead-lettered
  bool operator==(const PartitionOffset&) const = default;
};

struct DeadLetterRecord {
  std::string topic;
  int partition = 0;
  std::int64_t offset = 0;
  int attempts = 0;
  std::string error;
  TimestampMs at_ms = 0;
};

class ConsumerStateStore {
 public:
  virtual ~ConsumerStateStore() = default;
  // Partitions without a stored offset are absent.
  virtual Result<std::vector<PartitionOffset>, StoreError> consumer_offsets(
      std::string_view group, std::string_view topic) = 0;
  virtual Status<StoreError> set_consumer_offset(std::string_view group, std::string_view topic,
                                                 const PartitionOffset& offset) = 0;
  virtual Result<std::optional<std::int64_t>, StoreError> consumer_wallet_version(
      std::string_view group, std::string_view wallet_id) = 0;
  virtual Status<StoreError> set_consumer_wallet_version(std::string_view group,
                                                         std::string_view wallet_id,
                                                         std::int64_t version) = 0;
  virtual Status<StoreError> add_dead_letter(std::string_view group,
                                             const DeadLetterRecord& letter) = 0;
  virtual Result<std::int64_t, StoreError> dead_letter_count(std::string_view group) = 0;
  // The groups that stored an offset (verify: which projections a store holds).
  virtual Result<std::vector<std::string>, StoreError> consumer_groups() = 0;
};

}  // namespace wallex
