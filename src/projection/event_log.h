// EventLog: the read side's view of the write side's durable state: the log, read by position,
// and (for verify) the write model. Read-only by contract: nothing on the read side ever writes
// the write side's files.
//
// Thread safety: none; each user (projector thread, rebuild, verify) opens its own.
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "store/event_codec.h"
#include "store/store.h"

namespace wallex {

// LoggedEvent (an event with its stored documents) is declared in store/store.h.

class EventLog {
 public:
  virtual ~EventLog() = default;

  // Events with position > after_position, in position order, at most `limit`.
  virtual Result<std::vector<LoggedEvent>, StoreError> read_events(std::int64_t after_position,
                                                                   std::size_t limit) = 0;
  // The same into `events` (cleared first). A log that reads in place (SqliteEventLog) keeps the
  // vector's capacity, so a reader of batch after batch (the projector) reuses one buffer instead
  // of having fresh memory faulted in for every batch (50,000 events × 352 bytes, ~17 MiB, which
  // the allocator hands back to the kernel when it is freed); this default replaces the vector.
  // On failure `events` holds no events.
  virtual Status<StoreError> read_events_into(std::int64_t after_position, std::size_t limit,
                                              std::vector<LoggedEvent>& events) {
    events.clear();
    auto read = read_events(after_position, limit);
    if (!read) return fail(read.error());
    events = std::move(read).value();
    return Ok{};
  }
  virtual Result<std::int64_t, StoreError> last_position() = 0;
  // The write model (the state of every wallet after its last event), in no particular order.
  virtual Result<std::vector<WalletState>, StoreError> load_wallets() = 0;

  // Between these two calls every read sees one snapshot of the log and the write model, even
  // while a live server commits (verify compares both halves of one moment).
  virtual Status<StoreError> begin_snapshot() = 0;
  virtual void end_snapshot() = 0;

 protected:
  // read_events for a log whose own reading is read_events_into: a fresh vector filled by it.
  Result<std::vector<LoggedEvent>, StoreError> read_events_via_into(std::int64_t after_position,
                                                                    std::size_t limit) {
    std::vector<LoggedEvent> events;
    if (auto read = read_events_into(after_position, limit, events); !read) {
      return fail(read.error());
    }
    return events;
  }
};

// A stored event with the log's own encoding of its documents (what every EventLog hands out,
// whatever the event was read from: a store, a Kafka message, a test).
inline LoggedEvent logged_event(StoredEvent stored) {
  LoggedEvent logged;
  logged.data_json = encode_event_data(stored.event);
  logged.metadata_json = encode_event_metadata(stored.event, stored.metadata);
  static_cast<StoredEvent&>(logged) = std::move(stored);
  return logged;
}

// Reads through an EventStore (tests, and any store whose own instance is safe to share).
class EventStoreLog final : public EventLog {
 public:
  explicit EventStoreLog(EventStore& store) : store_(store) {}
  Result<std::vector<LoggedEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override {
    auto read = store_.read_events(after_position, limit);
    if (!read) return fail(read.error());
    std::vector<LoggedEvent> events;
    events.reserve(read.value().size());
    for (StoredEvent& stored : read.value()) events.push_back(logged_event(std::move(stored)));
    return events;
  }
  Result<std::int64_t, StoreError> last_position() override { return store_.last_position(); }
  Result<std::vector<WalletState>, StoreError> load_wallets() override {
    return store_.load_wallets();
  }
  Status<StoreError> begin_snapshot() override { return Ok{}; }
  void end_snapshot() override {}

 private:
  EventStore& store_;
};

}  // namespace wallex
