// The stored form of events: the `data` and `metadata` JSON documents of docs/event-format.md.
// Shared by every store so the format is identical on SQLite, PostgreSQL and Kafka.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "domain/wallet.h"
#include "store/store.h"

namespace wallex {

std::string encode_event_data(const Event& event);
std::string encode_event_metadata(const Event& event, const EventMetadata& metadata);

// Rebuilds an event from its stored columns; fails on any document that does not match the
// format (a damaged or foreign store).
Result<StoredEvent, std::string> decode_stored_event(std::int64_t position, std::string_view wallet_id,
                                                     std::int64_t version, std::string_view type,
                                                     std::string_view data,
                                                     std::string_view metadata);

}  // namespace wallex
