// Decodes the value of a `wallet-events` message (docs/kafka-format.md) into its fields. Pure:
// the consumer-group projectors turn the fields into an event through store/event_codec.h.
//
// Enforced limits: the value is at most kEventMessageBytesMax bytes and nests at most
// kEventMessageDepthMax levels; every field of the format must be present with its JSON type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace wallex {

inline constexpr std::size_t kEventMessageBytesMax = 1024 * 1024;
inline constexpr std::size_t kEventMessageDepthMax = 8;

struct EventMessageFields {
  std::int64_t position = 0;
  std::string aggregate_id;
  std::string event_type;
  std::int64_t event_version = 0;
  std::string payload_json;   // the payload object, serialized again (compact)
  std::string metadata_json;  // the metadata object, serialized again (compact)
  std::int64_t metadata_position = 0;
};

Result<EventMessageFields, std::string> decode_event_message_value(std::string_view value);

}  // namespace wallex
