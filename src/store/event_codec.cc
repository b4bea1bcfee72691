#include "store/event_codec.h"

#include "common/time_format.h"
#include "json/body_decoder.h"
#include "json/json_writer.h"

namespace wallex {
namespace {

const std::string* string_field(const DecodedBody& body, std::string_view key) {
  const JsonField* field = body.find(key);
  return field != nullptr && field->kind == JsonKind::kString ? &field->text : nullptr;
}

}  // namespace

// Room for the usual event document (ids, an amount, a short description) in one allocation.
constexpr std::size_t kDocumentCapacity = 192;

std::string encode_event_data(const Event& event) {
  JsonWriter out(kDocumentCapacity);
  out.begin_object();
  switch (event.type) {
    case EventType::kWalletCreated:
      out.key("ownerId").string(event.owner_id);
      break;
    case EventType::kWalletTransferInitiated:
      out.key("transferId").string(event.transfer_id);
      out.key("toWalletId").string(event.counterparty_id);
      break;
    case EventType::kWalletTransferCompleted:
      out.key("transferId").string(event.transfer_id);
      out.key("fromWalletId").string(event.counterparty_id);
      break;
    case EventType::kWalletCredited:
    case EventType::kWalletDebited:
      break;
  }
  if (event.type != EventType::kWalletCreated) {
    out.key("amount").string(event.amount.fixed2_text().view());
    if (event.description) out.key("description").string(*event.description);
  }
  out.end_object();
  return out.take();
}

std::string encode_event_metadata(const Event& event, const EventMetadata& metadata) {
  JsonWriter out(kDocumentCapacity);
  out.begin_object();
  out.key("occurredAt").string(Iso8601Ms(event.occurred_at_ms).view());
  out.key("correlationId").string(metadata.correlation_id);
  if (metadata.causation_id) {
    out.key("causationId").string(*metadata.causation_id);
  } else {
    out.key("causationId").null();
  }
  out.end_object();
  return out.take();
}

Result<StoredEvent, std::string> decode_stored_event(std::int64_t position, std::string_view wallet_id,
                                                     std::int64_t version, std::string_view type,
                                                     std::string_view data,
                                                     std::string_view metadata) {
  const std::string where = "event at position " + std::to_string(position);
  StoredEvent stored;
  stored.position = position;
  Event& event = stored.event;
  const std::optional<EventType> event_type = event_type_from_name(type);
  if (!event_type) return fail(where + ": unknown type " + std::string(type));
  event.type = *event_type;
  event.wallet_id = std::string(wallet_id);
  event.version = version;

  auto data_body = decode_object_body(data);
  if (!data_body) return fail(where + ": bad data: " + data_body.error().message);
  const DecodedBody& d = data_body.value();
  if (event.type == EventType::kWalletCreated) {
    const std::string* owner = string_field(d, "ownerId");
    if (owner == nullptr) return fail(where + ": missing ownerId");
    event.owner_id = *owner;
  } else {
    const std::string* amount = string_field(d, "amount");
    if (amount == nullptr) return fail(where + ": missing amount");
    auto money = Money::parse(*amount);
    if (!money) return fail(where + ": bad amount " + *amount);
    event.amount = money.value();
    if (const std::string* description = string_field(d, "description")) {
      event.description = *description;
    }
  }
  if (event.type == EventType::kWalletTransferInitiated ||
      event.type == EventType::kWalletTransferCompleted) {
    const std::string* transfer = string_field(d, "transferId");
    const std::string* counterparty = string_field(
        d, event.type == EventType::kWalletTransferInitiated ? "toWalletId" : "fromWalletId");
    if (transfer == nullptr || counterparty == nullptr) return fail(where + ": incomplete transfer");
    event.transfer_id = *transfer;
    event.counterparty_id = *counterparty;
  }

  auto meta_body = decode_object_body(metadata);
  if (!meta_body) return fail(where + ": bad metadata: " + meta_body.error().message);
  const DecodedBody& m = meta_body.value();
  const std::string* occurred = string_field(m, "occurredAt");
  const std::optional<TimestampMs> occurred_ms =
      occurred != nullptr ? parse_iso8601(*occurred) : std::nullopt;
  if (!occurred_ms) return fail(where + ": bad occurredAt");
  event.occurred_at_ms = *occurred_ms;
  if (const std::string* correlation = string_field(m, "correlationId")) {
    stored.metadata.correlation_id = *correlation;
  }
  if (const std::string* causation = string_field(m, "causationId")) {
    stored.metadata.causation_id = *causation;
  }
  return stored;
}

}  // namespace wallex
