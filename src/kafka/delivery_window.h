// DeliveryWindow: the events handed to the producer and not yet confirmed, in log order, and
// the published position: the highest position P such that every event up to P was delivered
// (the contiguous prefix). Deliveries may be confirmed in any order (ten partitions, several
// brokers); the published position moves only over a run of confirmed events, so storing it
// never skips an event that is still in flight or failed.
//
// Thread safety: none; the relay's thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "common/clock.h"

namespace wallex {

class DeliveryWindow {
 public:
  explicit DeliveryWindow(std::int64_t published = 0) : published_(published) {}

  // An event handed to the producer. Positions must increase (log order).
  void sent(std::int64_t position, TimestampMs occurred_at_ms);
  // A successful delivery report. Returns the event's occurredAt, or nullopt for a position
  // that is not in flight (a duplicate or stale report: ignored).
  std::optional<TimestampMs> delivered(std::int64_t position);
  // Forgets everything in flight (after a failed delivery, to send again from published()).
  void rewind();

  std::int64_t published() const { return published_; }
  // The last position handed to the producer (published() when nothing is in flight).
  std::int64_t last_sent() const {
    return in_flight_.empty() ? published_ : in_flight_.back().position;
  }
  std::size_t in_flight() const { return in_flight_.size(); }
  // occurredAt of the oldest event not yet published among those in flight; 0 when none.
  TimestampMs oldest_in_flight_ms() const {
    return in_flight_.empty() ? 0 : in_flight_.front().occurred_at_ms;
  }

 private:
  struct Slot {
    std::int64_t position;
    TimestampMs occurred_at_ms;
    bool delivered;
  };
  std::deque<Slot> in_flight_;
  std::int64_t published_;
};

}  // namespace wallex
