#include "json/event_message_decoder.h"

#include <boost/json.hpp>

namespace wallex {
namespace {

namespace json = boost::json;

const json::value* member(const json::object& object, std::string_view key) {
  const auto it = object.find(json::string_view(key.data(), key.size()));
  return it == object.end() ? nullptr : &it->value();
}

}  // namespace

Result<EventMessageFields, std::string> decode_event_message_value(std::string_view value) {
  if (value.size() > kEventMessageBytesMax) {
    return fail("value of " + std::to_string(value.size()) + " bytes is over the limit of " +
                std::to_string(kEventMessageBytesMax));
  }
  json::parse_options options;
  options.max_depth = kEventMessageDepthMax;
  json::error_code ec;
  const json::value parsed =
      json::parse(json::string_view(value.data(), value.size()), ec, {}, options);
  if (ec) return fail("value is not JSON: " + ec.message());
  if (!parsed.is_object()) return fail(std::string("value is not a JSON object"));
  const json::object& object = parsed.get_object();

  EventMessageFields fields;
  const auto integer = [&](const json::object& in, std::string_view key,
                           std::int64_t& out) -> Status<std::string> {
    const json::value* v = member(in, key);
    if (v == nullptr || !v->is_int64()) {
      if (v != nullptr && v->is_uint64())
        return fail("field " + std::string(key) + " is too large");
      return fail("field " + std::string(key) + " is missing or not an integer");
    }
    out = v->get_int64();
    return Ok{};
  };
  const auto text = [&](std::string_view key, std::string& out) -> Status<std::string> {
    const json::value* v = member(object, key);
    if (v == nullptr || !v->is_string())
      return fail("field " + std::string(key) + " is missing or not a string");
    out.assign(v->get_string().data(), v->get_string().size());
    return Ok{};
  };
  const auto document = [&](std::string_view key,
                            std::string& out) -> Result<const json::object*, std::string> {
    const json::value* v = member(object, key);
    if (v == nullptr || !v->is_object())
      return fail("field " + std::string(key) + " is missing or not an object");
    out = json::serialize(*v);
    return &v->get_object();
  };

  if (auto s = integer(object, "position", fields.position); !s) return fail(s.error());
  if (fields.position <= 0) return fail(std::string("position must be positive"));
  if (auto s = text("aggregateId", fields.aggregate_id); !s) return fail(s.error());
  if (auto s = text("eventType", fields.event_type); !s) return fail(s.error());
  if (auto s = integer(object, "eventVersion", fields.event_version); !s) return fail(s.error());
  if (fields.event_version < 0) return fail(std::string("eventVersion must not be negative"));
  if (auto s = document("payload", fields.payload_json); !s) return fail(s.error());
  auto metadata = document("metadata", fields.metadata_json);
  if (!metadata) return fail(metadata.error());
  if (auto s = integer(*metadata.value(), "position", fields.metadata_position); !s)
    return fail("metadata: " + s.error());
  return fields;
}

}  // namespace wallex
