// PgSharedReadSide: the read side of one `wallex serve` instance on a shared PostgreSQL database.
//
// Every instance serves queries from the shared tables (PgReadStore). Exactly one instance
// projects at a time: the holder of the projection lease (PgLease, kProjectionLeaseKey). The
// others try to take it every lease_retry_interval_ms; when the holder's session ends (killed,
// cut off), one of them takes over within about that interval and resumes from the shared
// checkpoints. A holder whose lease connection is lost stops its runner before trying again.
//
// Checkpoints: a thread polls the shared checkpoints and the log head every
// checkpoint_poll_interval_ms (at once when a query waits for a minPosition: notify_waiting()),
// so `minPosition` waits and GET /health lag work on every instance, holder or not. The wait
// itself stays bounded by QueryService's wait_max_ms.
//
// Why tailing the shared log by position is safe: committed positions are always the gap-free
// prefix 1..head (docs/postgresql.md), so `position > checkpoint` never skips an event that
// commits later.
//
// Thread safety: checkpoint(), statuses(), holder(), notify_head() and notify_waiting() may be
// called from any thread; start()/stop() from one.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "projection/projection_runner.h"
#include "projection/rows.h"

namespace wallex {

class PgLease;
class PgReadStore;
class PgEventLog;

struct SharedReadSideOptions {
  int lease_retry_interval_ms = 1'000;
  int checkpoint_poll_interval_ms = 100;
  RunnerOptions runner;
};

class PgSharedReadSide {
 public:
  // `instance_name` names this instance in GET /health and in the lease (PgLease limits).
  PgSharedReadSide(std::string url, std::string instance_name, const Clock& clock,
                   SharedReadSideOptions options = {});
  ~PgSharedReadSide();
  PgSharedReadSide(const PgSharedReadSide&) = delete;
  PgSharedReadSide& operator=(const PgSharedReadSide&) = delete;

  // Opens the polling connection and reads the checkpoints once (must succeed first).
  Status<StoreError> open();
  // Called (on the polling thread) whenever a shared checkpoint moved; must not block.
  void set_on_progress(std::function<void()> on_progress);
  void start();
  // Stops projecting (the runner drains, see RunnerOptions), gives the lease up, joins.
  void stop();

  std::int64_t checkpoint(ProjectorId id) const;
  std::vector<ProjectorStatus> statuses() const;
  // The instance holding the projection lease as last seen ("" when none), and whether it is us.
  std::string holder() const;
  bool holds_lease() const { return projecting_.load(); }
  const std::string& instance_name() const { return instance_name_; }

  void notify_head(std::int64_t last_position);
  void notify_waiting();

 private:
  void run();
  void poll(bool refresh_holder);
  void manage_lease();
  void stop_runner();

  const std::string url_;
  const std::string instance_name_;
  const Clock& clock_;
  const SharedReadSideOptions options_;
  std::function<void()> on_progress_;

  // Polling thread only.
  std::unique_ptr<PgReadStore> poll_store_;
  std::unique_ptr<PgEventLog> poll_log_;
  std::unique_ptr<PgLease> lease_;
  std::unique_ptr<PgEventLog> runner_log_;
  std::unique_ptr<PgReadStore> runner_store_;
  std::chrono::steady_clock::time_point next_lease_attempt_{};

  std::array<std::atomic<std::int64_t>, kProjectorCount> checkpoints_{};
  std::atomic<bool> projecting_{false};

  mutable std::mutex mutex_;  // guards runner_ (its pointer), statuses_, holder_, the wake state
  std::unique_ptr<ProjectionRunner> runner_;
  std::vector<ProjectorStatus> statuses_;
  std::string holder_;
  std::condition_variable wake_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wallex
