// ProjectionRunner: tails the event log and feeds the projectors, one batch per read-store
// transaction.
//
//   read ≤ batch_events_max events after the lowest checkpoint ─▶ BEGIN
//   for each projector: apply the events after ITS checkpoint; flush; write its checkpoint
//   COMMIT ─▶ publish the new checkpoints, wake waiting queries (on_progress)
//   (a projector fails: ROLLBACK, and the same batch again, from BEGIN, without it)
//
// So an event is applied exactly once per projector, across crashes: its rows and the checkpoint
// that covers it commit together. The checkpoints are re-read inside every transaction, so a
// rebuild that swapped the tables underneath is picked up (the projector's cache is dropped).
//
// Failures: a projector whose batch fails is retried after a growing delay (100 ms doubling to
// 5 s); after `failures_before_stuck` consecutive failures it is reported stuck (GET /health
// answers 503 with the reason) until a batch succeeds again. Other projectors go on meanwhile.
//
// Pace: behind the log, batches follow each other at once (each up to batch_events_max); caught
// up, the next batch starts batch_interval_ms after the previous one began, earlier when a query
// is waiting for its minPosition (notify_waiting()).
//
// Lag: head (the log's last position, from notify_head() and from polling the log) minus the
// checkpoint, and the age of the oldest event not yet applied.
//
// Thread safety: notify_head(), checkpoint() and statuses() may be called from any thread.
// run_once()/catch_up() must not run concurrently with the thread started by start().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "projection/event_log.h"
#include "projection/projector.h"
#include "projection/read_store.h"

namespace wallex {

struct RunnerOptions {
  // Events read and applied per read-store transaction, at most. Near the head of the log a batch
  // is whatever is new; when behind, big batches amortize the random page writes of the
  // per-wallet indexes and state rows (measured: 5k → ~15k events/s, 50k → ~33k events/s).
  std::size_t batch_events_max = 50'000;
  int poll_interval_ms = 500;  // looks at the log even without notify_head()
  // After a batch that caught up, new events are gathered this long before the next batch
  // (unless a query waits for a position: notify_waiting()). Every batch rewrites the pages of
  // the per-wallet rows and indexes it touches, so a batch per commit would write several pages
  // per event and compete with the writer's fsyncs for the disk; gathering bounds that.
  int batch_interval_ms = 500;
  // On stop() the thread first applies what the log still holds, for at most this long (the
  // writer has stopped by then), so a cleanly stopped server leaves its projections at the head.
  int drain_on_stop_ms = 5'000;
  // The runner numbers the wallets it sees for the projectors' caches (LoggedEvent::wallet_slot);
  // beyond this many it starts the numbering afresh after a commit (the caches, clean then, are
  // dropped with it), so its memory stays bounded as the caches' own is (cached_wallets_max).
  std::size_t wallet_slots_max = 200'000;
  int failures_before_stuck = 3;
  int retry_delay_first_ms = 100;
  int retry_delay_max_ms = 5'000;
};

struct ProjectorStatus {
  ProjectorId id = ProjectorId::kReadModel;
  std::int64_t position = 0;  // checkpoint
  std::int64_t head = 0;      // the log's last position as last seen
  std::int64_t positions_behind = 0;
  TimestampMs ms_behind = 0;  // age of the oldest event not yet applied; 0 when caught up
  bool stuck = false;
  int consecutive_failures = 0;
  std::string last_error;  // of the last failure; empty once a batch succeeded
};

class ProjectionRunner {
 public:
  ProjectionRunner(EventLog& log, ReadStore& store,
                   std::vector<std::unique_ptr<Projector>> projectors, const Clock& clock,
                   RunnerOptions options = {});
  ~ProjectionRunner();
  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  // Reads the checkpoints and the log head. Must succeed before anything else is called.
  Status<StoreError> open();
  // Called after every commit that moved a checkpoint (on the runner's thread); must not block.
  void set_on_progress(std::function<void()> on_progress);
  void start();
  // Drains (see drain_on_stop_ms), then joins the thread.
  void stop();

  // The log has events up to last_position: wakes the thread. Cheap; never blocks for long.
  void notify_head(std::int64_t last_position);
  // A query waits for a position not projected yet: run the next batch without gathering.
  void notify_waiting();
  std::int64_t checkpoint(ProjectorId id) const;
  std::vector<ProjectorStatus> statuses() const;
  // How often the thread's waits looked at their condition: once on entering a wait and once
  // per wake-up (tests: a commit while it gathers must not wake it).
  std::uint64_t wait_checks() const { return wait_checks_.load(std::memory_order_relaxed); }

  // One batch (see above). Returns how many events were read; 0 when every due projector is
  // caught up. A failure of one projector is recorded in its status, not returned.
  Result<std::size_t, StoreError> run_once();
  // run_once() until nothing is left or a projector fails (tests and tools).
  Status<StoreError> catch_up();

 private:
  struct Slot {
    std::unique_ptr<Projector> projector;
    std::int64_t committed = 0;  // runner thread only
    std::atomic<std::int64_t> published{0};
    // Guarded by status_mutex_.
    int failures = 0;
    std::chrono::steady_clock::time_point retry_at{};
    std::string last_error;
    TimestampMs pending_since_ms = 0;
  };

  void run();
  void record_failure(Slot& slot, const std::string& error);
  void record_success(Slot& slot, std::int64_t position, TimestampMs pending_since_ms);
  void raise_head(std::int64_t position);

  EventLog& log_;
  ReadStore& store_;
  const Clock& clock_;
  const RunnerOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;  // indexed by projector_index()
  // The batch being applied, kept between batches (EventLog::read_events_into): at most
  // batch_events_max events, 352 bytes each besides their strings.
  std::vector<LoggedEvent> batch_;
  // A dense number for each wallet seen since the numbering last started (LoggedEvent::
  // wallet_slot): one hash lookup an event here instead of one in each projector's cache. At
  // most RunnerOptions::wallet_slots_max between batches.
  WalletNumbering wallet_slots_;
  std::function<void()> on_progress_;
  std::atomic<std::int64_t> head_{0};

  mutable std::mutex status_mutex_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool woken_ = false;
  bool urgent_ = false;
  bool stopping_ = false;
  // The thread sleeps until there is news (not gathering, not applying): only then does
  // notify_head() wake it. Woken by every commit, it took a context switch in and out per group
  // commit only to see that it was still gathering.
  bool idle_ = false;
  std::atomic<std::uint64_t> wait_checks_{0};
  std::thread thread_;
};

}  // namespace wallex
