#include "kafka/delivery_window.h"

#include <algorithm>

#include "common/check.h"

namespace wallex {

void DeliveryWindow::sent(std::int64_t position, TimestampMs occurred_at_ms) {
  WALLEX_CHECK(position > last_sent());
  in_flight_.push_back(Slot{position, occurred_at_ms, false});
}

std::optional<TimestampMs> DeliveryWindow::delivered(std::int64_t position) {
  auto it = std::lower_bound(in_flight_.begin(), in_flight_.end(), position,
                             [](const Slot& slot, std::int64_t p) { return slot.position < p; });
  if (it == in_flight_.end() || it->position != position || it->delivered) return std::nullopt;
  it->delivered = true;
  const TimestampMs occurred_at_ms = it->occurred_at_ms;
  while (!in_flight_.empty() && in_flight_.front().delivered) {
    published_ = in_flight_.front().position;
    in_flight_.pop_front();
  }
  return occurred_at_ms;
}

void DeliveryWindow::rewind() { in_flight_.clear(); }

}  // namespace wallex
