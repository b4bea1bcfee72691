#include "projection/projection_runner.h"

#include <pthread.h>

#include <algorithm>

#include "common/check.h"
#include "common/log.h"

namespace wallex {

ProjectionRunner::ProjectionRunner(EventLog& log, ReadStore& store,
                                   std::vector<std::unique_ptr<Projector>> projectors,
                                   const Clock& clock, RunnerOptions options)
    : log_(log), store_(store), clock_(clock), options_(options) {
  WALLEX_CHECK(options_.batch_events_max > 0);
  for (auto& projector : projectors) {
    auto slot = std::make_unique<Slot>();
    slot->projector = std::move(projector);
    slots_.push_back(std::move(slot));
  }
}

ProjectionRunner::~ProjectionRunner() { stop(); }

Status<StoreError> ProjectionRunner::open() {
  auto checkpoints = store_.checkpoints();
  if (!checkpoints) return fail(checkpoints.error());
  auto head = log_.last_position();
  if (!head) return fail(head.error());
  raise_head(head.value());
  for (auto& slot : slots_) {
    for (const Checkpoint& checkpoint : checkpoints.value()) {
      if (checkpoint.projector == slot->projector->id()) slot->committed = checkpoint.position;
    }
    slot->published.store(slot->committed);
    slot->projector->reset();
  }
  return Ok{};
}

void ProjectionRunner::set_on_progress(std::function<void()> on_progress) {
  on_progress_ = std::move(on_progress);
}

void ProjectionRunner::start() {
  WALLEX_CHECK(!thread_.joinable());
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "wallex-project");  // shows in top -H and perf
    run();
  });
}

void ProjectionRunner::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProjectionRunner::raise_head(std::int64_t position) {
  std::int64_t seen = head_.load();
  while (position > seen && !head_.compare_exchange_weak(seen, position)) {
  }
}

void ProjectionRunner::notify_head(std::int64_t last_position) {
  raise_head(last_position);
  bool wake = false;
  {
    std::lock_guard lock(wake_mutex_);
    wake = idle_ && !woken_;
    woken_ = true;
  }
  if (wake) wake_.notify_one();
}

std::int64_t ProjectionRunner::checkpoint(ProjectorId id) const {
  for (const auto& slot : slots_) {
    if (slot->projector->id() == id) return slot->published.load();
  }
  return 0;
}

std::vector<ProjectorStatus> ProjectionRunner::statuses() const {
  const TimestampMs now_ms = clock_.now_ms();
  const std::int64_t head = head_.load();
  std::vector<ProjectorStatus> out;
  std::lock_guard lock(status_mutex_);
  for (const auto& slot : slots_) {
    ProjectorStatus status;
    status.id = slot->projector->id();
    status.position = slot->published.load();
    status.head = head;
    status.positions_behind = std::max<std::int64_t>(0, head - status.position);
    if (status.positions_behind > 0 && slot->pending_since_ms > 0) {
      status.ms_behind = std::max<TimestampMs>(0, now_ms - slot->pending_since_ms);
    }
    status.consecutive_failures = slot->failures;
    status.stuck = slot->failures >= options_.failures_before_stuck;
    status.last_error = slot->last_error;
    out.push_back(std::move(status));
  }
  return out;
}

void ProjectionRunner::record_failure(Slot& slot, const std::string& error) {
  int failures = 0;
  {
    std::lock_guard lock(status_mutex_);
    failures = ++slot.failures;
    slot.last_error = error;
    int delay_ms = options_.retry_delay_first_ms;
    for (int i = 1; i < failures && delay_ms < options_.retry_delay_max_ms; ++i) delay_ms *= 2;
    delay_ms = std::min(delay_ms, options_.retry_delay_max_ms);
    slot.retry_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
  }
  const std::string name(projector_name(slot.projector->id()));
  if (failures == 1) {
    log::warn("projector " + name + " failed, will retry: " + error);
  } else if (failures == options_.failures_before_stuck) {
    log::error("projector " + name + " is stuck after " + std::to_string(failures) +
               " failures: " + error);
  }
}

void ProjectionRunner::record_success(Slot& slot, std::int64_t position,
                                      TimestampMs pending_since_ms) {
  slot.committed = position;
  slot.published.store(position);
  int failures = 0;
  {
    std::lock_guard lock(status_mutex_);
    failures = slot.failures;
    slot.failures = 0;
    slot.last_error.clear();
    slot.pending_since_ms = pending_since_ms;
  }
  if (failures > 0) {
    log::info("projector " + std::string(projector_name(slot.projector->id())) +
              " recovered after " + std::to_string(failures) + " failures");
  }
}

Result<std::size_t, StoreError> ProjectionRunner::run_once() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<Slot*> due;
  {
    std::lock_guard lock(status_mutex_);
    for (auto& slot : slots_) {
      if (slot->failures == 0 || now >= slot->retry_at) due.push_back(slot.get());
    }
  }
  if (due.empty()) return std::size_t{0};
  std::int64_t from = due.front()->committed;
  for (const Slot* slot : due) from = std::min(from, slot->committed);

  if (auto read = log_.read_events_into(from, options_.batch_events_max, batch_); !read) {
    for (Slot* slot : due) record_failure(*slot, "reading the log: " + read.error().message);
    return fail(read.error());
  }
  wallet_slots_.number(batch_);
  const std::vector<LoggedEvent>& events = batch_;
  if (events.empty()) {
    auto head = log_.last_position();
    if (!head) return fail(head.error());
    raise_head(head.value());
    for (Slot* slot : due) {
      if (slot->committed > head.value()) {
        // read.db has seen more events than the log holds: it belongs to another store.
        record_failure(*slot, "checkpoint " + std::to_string(slot->committed) +
                                  " is beyond the last position of the log (" +
                                  std::to_string(head.value()) +
                                  "): read.db does not belong to this store; run wallex rebuild");
      } else if (slot->committed == head.value()) {
        record_success(*slot, slot->committed, 0);
      }
    }
    return std::size_t{0};
  }
  raise_head(events.back().position);

  auto fail_all = [&](const StoreError& error) -> Result<std::size_t, StoreError> {
    for (Slot* slot : due) {
      slot->projector->reset();
      record_failure(*slot, error.message);
    }
    return fail(error);
  };
  // One transaction for every due projector, without savepoints: SQLite copies every page a
  // savepoint touches into a statement journal (a temporary file for each transaction), which
  // grew to a large share of the projector's time on a big read.db. Failures are rare, so a
  // failing projector rolls the whole transaction back instead, and the batch is applied again
  // without it.
  struct Outcome {
    Slot* slot;
    std::int64_t position;  // new checkpoint (unchanged when nothing applied)
    std::optional<StoreError> error;
    bool skipped = false;  // the batch held nothing for it: its status stays as it was
  };
  std::vector<Outcome> outcomes;
  std::vector<Outcome> failed;  // projectors that failed in an earlier attempt of this batch
  std::vector<Slot*> trying = due;
  const TimestampMs now_ms = clock_.now_ms();
  while (true) {
    outcomes.clear();
    if (auto begun = store_.begin_write(); !begun) return fail_all(begun.error());
    auto stored = store_.checkpoints();
    if (!stored) {
      store_.rollback();
      return fail_all(stored.error());
    }
    std::optional<std::size_t> failing;  // index into `trying` of the projector that failed
    for (std::size_t i = 0; i < trying.size() && !failing; ++i) {
      Slot* slot = trying[i];
      Projector& projector = *slot->projector;
      std::int64_t checkpoint = 0;
      for (const Checkpoint& c : stored.value()) {
        if (c.projector == projector.id()) checkpoint = c.position;
      }
      if (checkpoint != slot->committed) {
        log::info("projector " + std::string(projector_name(projector.id())) +
                  ": checkpoint moved from " + std::to_string(slot->committed) + " to " +
                  std::to_string(checkpoint) + " (rebuilt?); resuming from there");
        projector.reset();
        slot->committed = checkpoint;
        slot->published.store(checkpoint);
      }
      // The batch holds every event after `from`; a checkpoint below it must wait for a batch
      // of its own (only after an external change of the checkpoints).
      if (checkpoint < from || events.back().position <= checkpoint) {
        outcomes.push_back({slot, checkpoint, std::nullopt, true});
        continue;
      }
      std::optional<StoreError> error;
      std::int64_t last = checkpoint;
      for (const LoggedEvent& event : events) {
        if (event.position <= checkpoint) continue;
        if (auto applied = projector.apply(event, store_); !applied) {
          error = applied.error();
          break;
        }
        last = event.position;
      }
      if (!error) {
        if (auto flushed = projector.flush(store_); !flushed) error = flushed.error();
      }
      if (!error) {
        if (auto s = store_.set_checkpoint(Checkpoint{projector.id(), last, now_ms}); !s) {
          error = s.error();
        }
      }
      // A store that buffers writes sends them now, so a failing row is this projector's.
      if (!error) {
        if (auto s = store_.flush_writes(); !s) error = s.error();
      }
      if (error) {
        failed.push_back({slot, checkpoint, error});
        failing = i;
      } else {
        outcomes.push_back({slot, last, std::nullopt});
      }
    }
    if (failing) {
      // Undo the attempt: every projector in it holds state the rollback just discarded.
      store_.rollback();
      for (Slot* slot : trying) slot->projector->reset();
      trying.erase(trying.begin() + static_cast<std::ptrdiff_t>(*failing));
      continue;
    }
    if (auto committed = store_.commit(); !committed) {
      store_.rollback();
      return fail_all(committed.error());
    }
    break;
  }
  if (wallet_slots_.size() > options_.wallet_slots_max) {
    // Committed: every cache is clean, so forgetting them loses nothing but their contents.
    wallet_slots_.clear();
    for (auto& slot : slots_) slot->projector->reset();
  }
  outcomes.insert(outcomes.end(), failed.begin(), failed.end());

  const std::int64_t head = head_.load();
  bool progressed = false;
  for (const Outcome& outcome : outcomes) {
    Slot& slot = *outcome.slot;
    // A projector the batch did not reach has neither succeeded nor failed: a stuck one stays
    // stuck (and /health 503) until a batch of its own applies something.
    if (outcome.skipped) continue;
    // The oldest event not yet applied: the one after the checkpoint if this batch has it,
    // otherwise (the batch ended there) the last event read is a lower bound of its age.
    TimestampMs pending_since_ms = 0;
    if (outcome.position < head) {
      pending_since_ms = events.back().event.occurred_at_ms;
      for (const LoggedEvent& event : events) {
        if (event.position > outcome.position) {
          pending_since_ms = event.event.occurred_at_ms;
          break;
        }
      }
    }
    if (outcome.error) {
      {
        std::lock_guard lock(status_mutex_);
        slot.pending_since_ms = pending_since_ms;
      }
      record_failure(slot, outcome.error->message);
      continue;
    }
    progressed = progressed || outcome.position != slot.committed;
    record_success(slot, outcome.position, pending_since_ms);
  }
  if (progressed && on_progress_) on_progress_();
  return events.size();
}

Status<StoreError> ProjectionRunner::catch_up() {
  while (true) {
    auto read = run_once();
    if (!read) return fail(read.error());
    {
      std::lock_guard lock(status_mutex_);
      for (const auto& slot : slots_) {
        if (slot->failures > 0) {
          return fail(StoreError{StoreErrorKind::kOther, slot->last_error});
        }
      }
    }
    if (read.value() == 0) return Ok{};
  }
}

void ProjectionRunner::notify_waiting() {
  {
    std::lock_guard lock(wake_mutex_);
    urgent_ = true;
  }
  wake_.notify_one();
}

void ProjectionRunner::run() {
  // Stopping: apply what is left of the log, within the drain time, then leave.
  auto drain = [this] {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.drain_on_stop_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      auto read = run_once();
      if (!read || read.value() == 0) return;
    }
  };
  while (true) {
    const auto started = std::chrono::steady_clock::now();
    auto read = run_once();
    const std::size_t events = read ? read.value() : 0;
    std::unique_lock lock(wake_mutex_);
    if (stopping_) {
      lock.unlock();
      return drain();
    }
    if (events >= options_.batch_events_max) continue;  // behind: the next full batch at once
    // Caught up: gather what the writer commits meanwhile (a query waiting cuts this short).
    if (events > 0) {
      wake_.wait_until(lock, started + std::chrono::milliseconds(options_.batch_interval_ms),
                       [this] {
                         wait_checks_.fetch_add(1, std::memory_order_relaxed);
                         return stopping_ || urgent_;
                       });
      if (stopping_) {
        lock.unlock();
        return drain();
      }
    }
    // Then sleep until there is news, the next poll, or the earliest retry of a failing one.
    auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.poll_interval_ms);
    {
      std::lock_guard status_lock(status_mutex_);
      for (const auto& slot : slots_) {
        if (slot->failures > 0) until = std::min(until, slot->retry_at);
      }
    }
    idle_ = true;
    wake_.wait_until(lock, until, [this] {
      wait_checks_.fetch_add(1, std::memory_order_relaxed);
      return stopping_ || woken_ || urgent_;
    });
    idle_ = false;
    woken_ = false;
    urgent_ = false;
    if (stopping_) {
      lock.unlock();
      return drain();
    }
  }
}

}  // namespace wallex
