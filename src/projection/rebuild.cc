#include "projection/rebuild.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "projection/projectors.h"

namespace wallex {
namespace {

// Reads the log on its own thread, a bounded number of batches ahead of the consumer, and
// numbers the wallets densely (LoggedEvent::wallet_slot) so the projectors index arrays.
class LogReader {
 public:
  LogReader(EventLog& log, std::size_t batch_events, std::size_t batches_max)
      : log_(log), batch_events_(batch_events), batches_max_(batches_max) {
    thread_ = std::thread([this] { run(); });
  }
  ~LogReader() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // The next batch; empty at the end of the log.
  Result<std::vector<LoggedEvent>, StoreError> next() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !batches_.empty() || error_ || done_; });
    if (!batches_.empty()) {
      std::vector<LoggedEvent> batch = std::move(batches_.front());
      batches_.pop_front();
      lock.unlock();
      changed_.notify_all();
      return batch;
    }
    if (error_) return fail(*error_);
    return std::vector<LoggedEvent>();
  }

  // Hands a batch the consumer is done with back to the reader thread, which frees it: freeing
  // a batch's strings costs about as much as a projector's work on it, and the reader has the
  // spare core.
  void discard(std::vector<LoggedEvent> batch) {
    {
      std::lock_guard lock(mutex_);
      spent_.push_back(std::move(batch));
    }
    changed_.notify_all();
  }

 private:
  void run() {
    std::int64_t after = 0;
    while (true) {
      std::deque<std::vector<LoggedEvent>> spent;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] {
          return stopping_ || batches_.size() < batches_max_ || !spent_.empty();
        });
        if (stopping_) return;
        spent.swap(spent_);
        if (batches_.size() >= batches_max_) continue;  // woken only to free spent batches
      }
      spent.clear();
      auto read = log_.read_events(after, batch_events_);
      std::lock_guard lock(mutex_);
      if (!read) {
        error_ = read.error();
      } else if (read.value().empty()) {
        done_ = true;
      } else {
        after = read.value().back().position;
        wallet_slots_.number(read.value());
        batches_.push_back(std::move(read).value());
      }
      changed_.notify_all();
      if (error_ || done_) return;
    }
  }

  EventLog& log_;
  const std::size_t batch_events_;
  const std::size_t batches_max_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<LoggedEvent>> batches_;
  std::deque<std::vector<LoggedEvent>> spent_;  // consumed batches the reader thread frees
  WalletNumbering wallet_slots_;                // reader thread only
  std::optional<StoreError> error_;
  bool done_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

Result<RebuildSummary, StoreError> rebuild(EventLog& log, ReadStore& store, const Clock& clock,
                                           const RebuildOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count());
  };
  auto head = log.last_position();
  if (!head) return fail(head.error());
  if (auto begun = store.begin_rebuild(); !begun) return fail(begun.error());

  ProjectorOptions projector_options;
  projector_options.keep_all_state = true;
  std::vector<std::unique_ptr<Projector>> projectors = make_projectors(projector_options);
  RebuildSummary summary;
  std::int64_t since_commit = 0;

  if (auto begun = store.begin_write(); !begun) return fail(begun.error());
  auto abandon = [&](const StoreError& error) -> Result<RebuildSummary, StoreError> {
    store.rollback();  // the _next tables are dropped by the next rebuild
    return fail(error);
  };
  {
    LogReader reader(log, options.read_batch_events, options.read_ahead_batches);
    while (true) {
      auto read = reader.next();
      if (!read) return abandon(read.error());
      std::vector<LoggedEvent>& events = read.value();
      if (events.empty()) break;
      for (auto& projector : projectors) {
        for (const LoggedEvent& event : events) {
          if (auto applied = projector->apply(event, store); !applied) {
            return abandon(applied.error());
          }
        }
      }
      for (const LoggedEvent& event : events) {
        if (event.event.type == EventType::kWalletCreated) ++summary.wallets;
      }
      summary.events += static_cast<std::int64_t>(events.size());
      summary.last_position = events.back().position;
      since_commit += static_cast<std::int64_t>(events.size());
      reader.discard(std::move(events));
      if (since_commit >= static_cast<std::int64_t>(options.transaction_events)) {
        if (auto s = store.commit(); !s) return abandon(s.error());
        if (auto s = store.begin_write(); !s) return fail(s.error());
        since_commit = 0;
      }
      if (options.on_progress) {
        options.on_progress(
            RebuildProgress{summary.events, summary.last_position, head.value(), elapsed_ms()});
      }
    }
  }
  for (auto& projector : projectors) {
    if (auto flushed = projector->flush(store); !flushed) return abandon(flushed.error());
  }
  if (auto s = store.commit(); !s) return abandon(s.error());

  const std::int64_t swap_started_ms = elapsed_ms();
  std::vector<Checkpoint> checkpoints;
  const TimestampMs now_ms = clock.now_ms();
  for (const ProjectorId id : kAllProjectors) {
    checkpoints.push_back(Checkpoint{id, summary.last_position, now_ms});
  }
  if (auto s = store.finish_rebuild(checkpoints); !s) return fail(s.error());
  summary.elapsed_ms = elapsed_ms();
  summary.swap_ms = summary.elapsed_ms - swap_started_ms;
  return summary;
}

}  // namespace wallex
