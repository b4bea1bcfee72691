#include "projection/event_feed.h"

#include <cstddef>
#include <utility>

namespace wallex {

void EventBatches::append(std::vector<LoggedEvent>&& batch, Dropped& dropped) {
  if (batch.empty()) return;
  if (!empty() && batch.front().position != batches_.back().back().position + 1) {
    for (auto& old : batches_) dropped.push_back(std::move(old));
    batches_.clear();
    front_offset_ = 0;
    events_ = 0;
  }
  events_ += batch.size();
  batches_.push_back(std::move(batch));
}

void EventBatches::append_all(EventBatches&& other, Dropped& dropped) {
  if (!other.empty() && other.front_offset_ > 0) {
    std::vector<LoggedEvent>& first = other.batches_.front();
    first.erase(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(other.front_offset_));
  }
  for (auto& batch : other.batches_) append(std::move(batch), dropped);
  other = EventBatches();
}

void EventBatches::pop_front(Dropped& dropped) {
  --events_;
  if (++front_offset_ < batches_.front().size()) return;
  dropped.push_back(std::move(batches_.front()));
  batches_.pop_front();
  front_offset_ = 0;
}

void EventBatches::trim(std::size_t events_max, Dropped& dropped) {
  while (events_ > events_max && !empty()) {
    events_ -= batches_.front().size() - front_offset_;
    front_offset_ = 0;
    dropped.push_back(std::move(batches_.front()));
    batches_.pop_front();
  }
}

void EventFeed::push(std::vector<LoggedEvent>&& events) {
  EventBatches::Dropped dropped;  // freed after the lock is released
  std::lock_guard lock(mutex_);
  batches_.append(std::move(events), dropped);
  batches_.trim(events_max_, dropped);
}

EventBatches EventFeed::drain() {
  std::lock_guard lock(mutex_);
  return std::exchange(batches_, EventBatches());
}

bool FedEventLog::take(std::int64_t after_position, std::size_t limit,
                       std::vector<LoggedEvent>& events) {
  EventBatches::Dropped dropped;
  pending_.append_all(feed_.drain(), dropped);
  // What the reader took and has not read counts against the bound too.
  pending_.trim(feed_.events_max(), dropped);
  // Forget what the reader is past already.
  while (!pending_.empty() && pending_.front().position <= after_position) {
    pending_.pop_front(dropped);
  }
  // The feed starts later (or holds nothing): read the log.
  if (pending_.empty() || pending_.front().position != after_position + 1) return false;
  events.clear();
  // Batches continue each other (append), but a batch with a gap inside ends the read there.
  while (events.size() < limit && !pending_.empty() &&
         pending_.front().position ==
             after_position + 1 + static_cast<std::int64_t>(events.size())) {
    events.push_back(std::move(pending_.front()));
    pending_.pop_front(dropped);
  }
  return true;
}

Status<StoreError> FedEventLog::read_events_into(std::int64_t after_position, std::size_t limit,
                                                 std::vector<LoggedEvent>& events) {
  if (limit > 0 && take(after_position, limit, events)) {
    events_from_feed_ += events.size();
    return Ok{};
  }
  ++reads_from_log_;
  return log_.read_events_into(after_position, limit, events);
}

Result<std::vector<LoggedEvent>, StoreError> FedEventLog::read_events(std::int64_t after_position,
                                                                      std::size_t limit) {
  return read_events_via_into(after_position, limit);
}

}  // namespace wallex
