#include "kafka/consumer_message.h"

#include "json/event_message_decoder.h"
#include "store/event_codec.h"

namespace wallex {

Result<LoggedEvent, std::string> event_from_message(std::string_view key, std::string_view value) {
  auto fields = decode_event_message_value(value);
  if (!fields) return fail(fields.error());
  const EventMessageFields& f = fields.value();
  if (f.aggregate_id != key) {
    return fail("key " + std::string(key) + " is not the value's aggregateId " + f.aggregate_id);
  }
  if (f.metadata_position != f.position) {
    return fail("metadata.position " + std::to_string(f.metadata_position) +
                " is not the position " + std::to_string(f.position));
  }
  auto stored = decode_stored_event(f.position, f.aggregate_id, f.event_version, f.event_type,
                                    f.payload_json, f.metadata_json);
  if (!stored) return fail(stored.error());
  // The log's own encoding of the documents, not the message's text: the read side copies these
  // bytes (ledger metadata, the per-wallet event copy).
  return logged_event(std::move(stored).value());
}

VersionCheck check_version(std::optional<std::int64_t> applied, std::int64_t version) {
  const std::int64_t next = applied ? *applied + 1 : 0;
  if (version < next) return VersionCheck::kDuplicate;
  if (version == next) return VersionCheck::kApply;
  return VersionCheck::kGap;
}

std::vector<std::pair<std::string, std::string>> dead_letter_headers(
    const std::vector<std::pair<std::string, std::string>>& original, const DeadLetter& letter) {
  static constexpr std::string_view kOwn[] = {"dlq-error",         "dlq-attempts",
                                              "dlq-origin-topic",  "dlq-origin-partition",
                                              "dlq-origin-offset", "dlq-group"};
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& header : original) {
    bool own = false;
    for (std::string_view name : kOwn) own = own || header.first == name;
    if (!own) headers.push_back(header);
  }
  std::string error = letter.error.substr(0, kDeadLetterErrorBytesMax);
  headers.emplace_back("dlq-error", std::move(error));
  headers.emplace_back("dlq-attempts", std::to_string(letter.attempts));
  headers.emplace_back("dlq-origin-topic", letter.topic);
  headers.emplace_back("dlq-origin-partition", std::to_string(letter.partition));
  headers.emplace_back("dlq-origin-offset", std::to_string(letter.offset));
  headers.emplace_back("dlq-group", letter.group);
  return headers;
}

}  // namespace wallex
