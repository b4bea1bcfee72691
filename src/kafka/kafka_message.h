// The Kafka form of an event (docs/kafka-format.md): what the relay publishes to
// `wallet-events` for each event of the log. Pure: no librdkafka, no I/O, so the format is unit
// tested byte for byte and shared by anything that reads or writes these messages.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "projection/event_log.h"

namespace wallex {

inline constexpr std::string_view kEventsTopic = "wallet-events";
inline constexpr int kEventsTopicPartitions = 10;
inline constexpr std::string_view kDeadLetterTopic = "wallet-events-dlq";
inline constexpr int kDeadLetterTopicPartitions = 5;

struct KafkaMessage {
  std::string key;    // the wallet id: every event of a wallet goes to one partition
  std::string value;  // JSON {id, position, aggregateId, eventType, eventVersion, payload,
                      // metadata, createdAt}
  // In this order: event-type, aggregate-id, position, correlation-id, and causation-id when the
  // request had an Idempotency-Key.
  std::vector<std::pair<std::string, std::string>> headers;
  bool operator==(const KafkaMessage&) const = default;
};

KafkaMessage kafka_message_for(const LoggedEvent& event);

}  // namespace wallex
