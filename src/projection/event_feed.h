// EventFeed: the events of durable commits, handed from the writer's side to the projector in
// memory, so that the projector need not read back (and decode) what was just written.
//
//   syncer ── push(events of a durable batch) ──▶ EventFeed ──▶ FedEventLog::read_events_into
//                                                               └─ not in the feed: the log
//
// The feed is only a shortcut: FedEventLog serves a read from it only when the feed holds the
// very next position and every event after it without a gap; anything else (the projector is
// behind by more than the feed holds, a read from an older checkpoint after a failed batch, a
// fresh start) is read from the log, exactly as without a feed. Events are pushed only once an
// fsync covers them, so the feed never shows more than the log's durable head.
//
// Bounded: at most `events_max` events wait in it, and at most as many more that the projector
// took and has not read yet (more than a batch's limit arrived at once); beyond that the oldest
// are dropped (the projector then reads them from the log). A pushed batch that does not continue
// the last one (a batch that was never pushed) empties the feed first.
//
// Thread safety: push() from one thread (the syncer), FedEventLog from another (the projector);
// the lock is held only to move whole batches, never to copy or free events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "projection/event_log.h"

namespace wallex {

// Events in position order, kept as the batches they came in; the feed's queue and its reader's.
class EventBatches {
 public:
  // Batches taken out, to be freed by the caller (outside any lock).
  using Dropped = std::deque<std::vector<LoggedEvent>>;

  bool empty() const { return batches_.empty(); }
  // The first event not popped yet; only when !empty().
  LoggedEvent& front() { return batches_.front()[front_offset_]; }
  // Appends a gap-free batch. One that does not continue the last event (a batch went by that
  // was never appended) empties the queue first.
  void append(std::vector<LoggedEvent>&& batch, Dropped& dropped);
  // Appends every batch of `other` (as append() does), leaving it empty.
  void append_all(EventBatches&& other, Dropped& dropped);
  void pop_front(Dropped& dropped);
  // Drops whole batches from the front until at most `events_max` events remain.
  void trim(std::size_t events_max, Dropped& dropped);

 private:
  std::deque<std::vector<LoggedEvent>> batches_;
  std::size_t front_offset_ = 0;  // events of the first batch popped already
  std::size_t events_ = 0;        // events not popped
};

class EventFeed {
 public:
  // An event takes ~0.9 KiB with its strings (352 bytes, ~530 more for a transfer's ids and
  // documents): the default holds up to ~60 MiB, the projector's share as much again.
  static constexpr std::size_t kEventsMaxDefault = 65'536;

  explicit EventFeed(std::size_t events_max = kEventsMaxDefault) : events_max_(events_max) {}

  // The events of one durable batch, in position order, gap-free.
  void push(std::vector<LoggedEvent>&& events);
  // Every batch waiting, in position order; the feed is empty after.
  EventBatches drain();
  std::size_t events_max() const { return events_max_; }

 private:
  const std::size_t events_max_;
  std::mutex mutex_;
  EventBatches batches_;
};

// An EventLog that serves reads from an EventFeed when it can, from `log` otherwise.
class FedEventLog final : public EventLog {
 public:
  FedEventLog(EventLog& log, EventFeed& feed) : log_(log), feed_(feed) {}

  Result<std::vector<LoggedEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  Status<StoreError> read_events_into(std::int64_t after_position, std::size_t limit,
                                      std::vector<LoggedEvent>& events) override;
  Result<std::int64_t, StoreError> last_position() override { return log_.last_position(); }
  Result<std::vector<WalletState>, StoreError> load_wallets() override {
    return log_.load_wallets();
  }
  Status<StoreError> begin_snapshot() override { return log_.begin_snapshot(); }
  void end_snapshot() override { log_.end_snapshot(); }

  // Events served from the feed and reads that went to the log (tests, diagnostics).
  std::uint64_t events_from_feed() const { return events_from_feed_; }
  std::uint64_t reads_from_log() const { return reads_from_log_; }

 private:
  // Serves from the batches taken from the feed; false when they do not start at
  // after_position + 1.
  bool take(std::int64_t after_position, std::size_t limit, std::vector<LoggedEvent>& events);

  EventLog& log_;
  EventFeed& feed_;
  EventBatches pending_;  // taken from the feed, not served yet
  std::uint64_t events_from_feed_ = 0;
  std::uint64_t reads_from_log_ = 0;
};

}  // namespace wallex
