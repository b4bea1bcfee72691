#include "kafka/kafka_message.h"

#include "common/time_format.h"
#include "json/json_writer.h"
#include "projection/rows.h"

namespace wallex {

KafkaMessage kafka_message_for(const LoggedEvent& event) {
  const std::string position = std::to_string(event.position);
  const std::string_view type = event_type_name(event.event.type);
  const std::string occurred_at = format_iso8601_ms(event.event.occurred_at_ms);

  KafkaMessage message;
  message.key = event.event.wallet_id;

  JsonWriter out;
  out.begin_object();
  // The same id as the ledger entry of the event: a function of the position only.
  out.key("id").string(entry_id_for_position(event.position));
  out.key("position").integer(event.position);
  out.key("aggregateId").string(event.event.wallet_id);
  out.key("eventType").string(type);
  out.key("eventVersion").integer(event.event.version);
  // The stored data document, verbatim: amounts stay decimal strings.
  out.key("payload").raw_value(event.data_json);
  out.key("metadata").begin_object();
  out.key("occurredAt").string(occurred_at);
  out.key("correlationId").string(event.metadata.correlation_id);
  out.key("causationId");
  if (event.metadata.causation_id) {
    out.string(*event.metadata.causation_id);
  } else {
    out.null();
  }
  out.key("position").integer(event.position);
  out.end_object();
  out.key("createdAt").string(occurred_at);
  out.end_object();
  message.value = out.take();

  message.headers.emplace_back("event-type", std::string(type));
  message.headers.emplace_back("aggregate-id", event.event.wallet_id);
  message.headers.emplace_back("position", position);
  message.headers.emplace_back("correlation-id", event.metadata.correlation_id);
  if (event.metadata.causation_id) {
    message.headers.emplace_back("causation-id", *event.metadata.causation_id);
  }
  return message;
}

}  // namespace wallex
