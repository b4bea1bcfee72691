// The pure parts of the consumer-group projectors (kafka/group_projector.h): a message of
// `wallet-events` back into the event it carries, the per-wallet de-duplication rule, and the
// headers of a dead letter. No librdkafka, no I/O: unit tested in tests/kafka.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "projection/event_log.h"

namespace wallex {

// The event of a message, with the stored documents of the log re-encoded from the value (the
// same bytes the log holds, so a Kafka-built read store equals the in-process one). Fails, with
// why, on a value that does not follow docs/kafka-format.md, on a key that is not the value's
// aggregateId, or on positions of value and metadata that differ.
Result<LoggedEvent, std::string> event_from_message(std::string_view key, std::string_view value);

// What to do with an event of a wallet whose last applied version is `applied` (nullopt: no
// event of it applied yet). Kafka delivers a wallet's events in version order, at least once.
enum class VersionCheck {
  kApply,      // the next version
  kDuplicate,  // at or below the applied version: a redelivery, skipped
  kGap,        // beyond the next version: an event is missing; an error, never skipped silently
};
VersionCheck check_version(std::optional<std::int64_t> applied, std::int64_t version);

struct DeadLetter {
  std::string topic;  // where the message was read
  int partition = 0;
  std::int64_t offset = 0;
  std::string group;
  std::string error;  // the last failure
  int attempts = 0;
};

// Header values are cut at this many bytes (an error message can quote a long value).
inline constexpr std::size_t kDeadLetterErrorBytesMax = 1'000;

// The original headers, then dlq-error, dlq-attempts, dlq-origin-topic, dlq-origin-partition,
// dlq-origin-offset, dlq-group (docs/kafka-format.md). An original header of one of those names
// is dropped, so each appears once.
std::vector<std::pair<std::string, std::string>> dead_letter_headers(
    const std::vector<std::pair<std::string, std::string>>& original, const DeadLetter& letter);

}  // namespace wallex
