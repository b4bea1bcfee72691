#include "projection/event_feed.h"

#include <utility>

namespace wallex {
namespace {

// Drops whole batches from the front of `batches` until at most `events_max` events remain in
// them; `dropped` receives them, to be freed by the caller outside any lock.
void trim_front(std::deque<std::vector<LoggedEvent>>& batches, std::size_t& events,
                std::size_t events_max, std::size_t& front_offset,
                std::deque<std::vector<LoggedEvent>>& dropped) {
  while (events > events_max && !batches.empty()) {
    events -= batches.front().size() - front_offset;
    front_offset = 0;
    dropped.push_back(std::move(batches.front()));
    batches.pop_front();
  }
}

}  // namespace

void EventFeed::push(std::vector<LoggedEvent>&& events) {
  if (events.empty()) return;
  std::deque<std::vector<LoggedEvent>> dropped;  // freed after the lock is released
  {
    std::lock_guard lock(mutex_);
    if (next_position_ != 0 && events.front().position != next_position_) {
      // A batch went by unpushed: what the feed holds cannot be followed by this one.
      dropped.swap(batches_);
      events_ = 0;
    }
    next_position_ = events.back().position + 1;
    events_ += events.size();
    batches_.push_back(std::move(events));
    std::size_t no_offset = 0;
    trim_front(batches_, events_, events_max_, no_offset, dropped);
  }
}

void EventFeed::drain(std::deque<std::vector<LoggedEvent>>& batches) {
  std::deque<std::vector<LoggedEvent>> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(batches_);
    events_ = 0;
  }
  for (auto& batch : taken) batches.push_back(std::move(batch));
}

void FedEventLog::drop_pending(std::deque<std::vector<LoggedEvent>>& dropped) {
  for (auto& batch : pending_) dropped.push_back(std::move(batch));
  pending_.clear();
  front_offset_ = 0;
  pending_events_ = 0;
}

bool FedEventLog::take(std::int64_t after_position, std::size_t limit,
                       std::vector<LoggedEvent>& events) {
  std::deque<std::vector<LoggedEvent>> dropped;
  {
    std::deque<std::vector<LoggedEvent>> fresh;
    feed_.drain(fresh);
    for (auto& batch : fresh) {
      if (!pending_.empty() && batch.front().position != pending_.back().back().position + 1) {
        // Does not continue what is pending (the feed started over after a gap).
        drop_pending(dropped);
      }
      pending_events_ += batch.size();
      pending_.push_back(std::move(batch));
    }
    trim_front(pending_, pending_events_, feed_.events_max(), front_offset_, dropped);
  }
  // Forget what the reader is past already. Positions are gap-free within and across batches.
  while (!pending_.empty() && pending_.front().back().position <= after_position) {
    pending_events_ -= pending_.front().size() - front_offset_;
    front_offset_ = 0;
    dropped.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  if (pending_.empty()) return false;
  {
    const std::vector<LoggedEvent>& front = pending_.front();
    const std::int64_t first = front[front_offset_].position;
    if (first > after_position + 1) return false;  // the feed starts later: read the log
    const auto skip = static_cast<std::size_t>(after_position + 1 - first);
    if (front_offset_ + skip >= front.size()) {
      // Positions with a gap inside a batch (never pushed so): read the log.
      drop_pending(dropped);
      return false;
    }
    front_offset_ += skip;
    pending_events_ -= skip;
  }

  events.clear();
  std::int64_t next = after_position + 1;
  while (events.size() < limit && !pending_.empty()) {
    std::vector<LoggedEvent>& front = pending_.front();
    if (front[front_offset_].position != next) break;
    events.push_back(std::move(front[front_offset_]));
    ++next;
    ++front_offset_;
    --pending_events_;
    if (front_offset_ == front.size()) {
      dropped.push_back(std::move(front));
      pending_.pop_front();
      front_offset_ = 0;
    }
  }
  if (events.empty()) {
    // A gap inside a batch: nothing in the feed can be trusted.
    drop_pending(dropped);
    return false;
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
  std::vector<LoggedEvent> events;
  if (auto read = read_events_into(after_position, limit, events); !read) {
    return fail(read.error());
  }
  return events;
}

}  // namespace wallex
