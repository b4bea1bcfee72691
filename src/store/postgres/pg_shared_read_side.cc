#include "store/postgres/pg_shared_read_side.h"

#include "common/log.h"
#include "projection/projectors.h"
#include "store/postgres/pg_lease.h"
#include "store/postgres/pg_read_store.h"

namespace wallex {

PgSharedReadSide::PgSharedReadSide(std::string url, std::string instance_name, const Clock& clock,
                                   SharedReadSideOptions options)
    : url_(std::move(url)),
      instance_name_(std::move(instance_name)),
      clock_(clock),
      options_(options) {}

PgSharedReadSide::~PgSharedReadSide() { stop(); }

Status<StoreError> PgSharedReadSide::open() {
  auto store = PgReadStore::open(url_);
  if (!store) return fail(store.error());
  poll_store_ = std::move(store).value();
  auto log = PgEventLog::open(url_);
  if (!log) return fail(log.error());
  poll_log_ = std::move(log).value();
  auto stored = poll_store_->checkpoints();
  if (!stored) return fail(stored.error());
  for (const Checkpoint& c : stored.value()) {
    checkpoints_[projector_index(c.projector)].store(c.position);
  }
  return Ok{};
}

void PgSharedReadSide::set_on_progress(std::function<void()> on_progress) {
  on_progress_ = std::move(on_progress);
}

void PgSharedReadSide::start() {
  thread_ = std::thread([this] { run(); });
}

void PgSharedReadSide::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  stop_runner();
  lease_.reset();  // ends the session's lock: another instance takes over
}

std::int64_t PgSharedReadSide::checkpoint(ProjectorId id) const {
  return checkpoints_[projector_index(id)].load();
}

std::vector<ProjectorStatus> PgSharedReadSide::statuses() const {
  std::lock_guard lock(mutex_);
  std::vector<ProjectorStatus> out = statuses_;
  if (runner_) {
    // The holder knows more (failures, stuck) than the shared checkpoints tell.
    for (const ProjectorStatus& local : runner_->statuses()) {
      for (ProjectorStatus& s : out) {
        if (s.id != local.id) continue;
        s.stuck = local.stuck;
        s.consecutive_failures = local.consecutive_failures;
        s.last_error = local.last_error;
      }
    }
  }
  return out;
}

std::string PgSharedReadSide::holder() const {
  std::lock_guard lock(mutex_);
  return holder_;
}

void PgSharedReadSide::notify_head(std::int64_t last_position) {
  std::lock_guard lock(mutex_);
  if (runner_) runner_->notify_head(last_position);
}

void PgSharedReadSide::notify_waiting() {
  {
    std::lock_guard lock(mutex_);
    if (runner_) runner_->notify_waiting();
    woken_ = true;
  }
  wake_.notify_all();
}

void PgSharedReadSide::run() {
  bool first = true;  // try the lease at once: a lone instance projects from its start
  while (true) {
    if (!first) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.checkpoint_poll_interval_ms),
                     [this] { return woken_ || stopping_; });
      if (stopping_) return;
      woken_ = false;
    }
    first = false;
    const bool lease_round = std::chrono::steady_clock::now() >= next_lease_attempt_;
    if (lease_round) {
      manage_lease();
      next_lease_attempt_ = std::chrono::steady_clock::now() +
                            std::chrono::milliseconds(options_.lease_retry_interval_ms);
    }
    poll(lease_round);
  }
}

void PgSharedReadSide::poll(bool refresh_holder) {
  auto stored = poll_store_->checkpoints();
  auto head = poll_log_->last_position();
  if (!stored || !head) {
    log::warn("read side: cannot read the shared checkpoints: " +
              (!stored ? stored.error().message : head.error().message));
    // A lost connection is not reconnected by PgEventLog: open a new one next time.
    if (auto log = PgEventLog::open(url_); log) poll_log_ = std::move(log).value();
    return;
  }
  bool moved = false;
  std::vector<ProjectorStatus> statuses;
  for (const ProjectorId id : kAllProjectors) {
    std::int64_t position = 0;
    for (const Checkpoint& c : stored.value()) {
      if (c.projector == id) position = c.position;
    }
    if (checkpoints_[projector_index(id)].exchange(position) != position) moved = true;
    ProjectorStatus s;
    s.id = id;
    s.position = position;
    s.head = head.value();
    s.positions_behind = std::max<std::int64_t>(0, head.value() - position);
    if (s.positions_behind > 0) {
      // The age of the oldest event not applied yet.
      auto next = poll_log_->read_events(position, 1);
      if (next && !next.value().empty()) {
        s.ms_behind =
            std::max<TimestampMs>(0, clock_.now_ms() - next.value().front().event.occurred_at_ms);
      }
    }
    statuses.push_back(std::move(s));
  }
  // Who holds the lease changes only on a lease round (about once a second).
  std::optional<std::string> holder;
  if (lease_ && refresh_holder) {
    auto found = lease_->holder();
    if (found) holder = found.value().value_or("");
  }
  {
    std::lock_guard lock(mutex_);
    statuses_ = std::move(statuses);
    if (holder) holder_ = *holder;
  }
  if (moved && on_progress_) on_progress_();
}

void PgSharedReadSide::manage_lease() {
  if (!lease_) {
    auto opened = PgLease::open(url_, kProjectionLeaseKey, instance_name_);
    if (!opened) {
      log::warn("read side: cannot open the projection lease: " + opened.error().message);
      return;
    }
    lease_ = std::move(opened).value();
  }
  auto acquired = lease_->try_acquire();
  if (!acquired) {
    log::warn("read side: projection lease lost: " + acquired.error().message);
    stop_runner();
    lease_.reset();
    return;
  }
  if (!acquired.value() || runner_) return;
  // Just acquired: project from the shared checkpoints.
  auto log = PgEventLog::open(url_);
  auto store = PgReadStore::open(url_);
  if (!log || !store) {
    log::warn("read side: cannot open the projection's connections: " +
              (!log ? log.error().message : store.error().message));
    lease_.reset();  // give the lease up: another instance may do better
    return;
  }
  runner_log_ = std::move(log).value();
  runner_store_ = std::move(store).value();
  auto runner = std::make_unique<ProjectionRunner>(*runner_log_, *runner_store_, make_projectors(),
                                                   clock_, options_.runner);
  if (auto opened = runner->open(); !opened) {
    log::warn("read side: cannot open the projection: " + opened.error().message);
    runner_store_.reset();
    runner_log_.reset();
    lease_.reset();
    return;
  }
  runner->set_on_progress([this] {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    wake_.notify_all();
  });
  runner->start();
  {
    std::lock_guard lock(mutex_);
    runner_ = std::move(runner);
  }
  projecting_.store(true);
  log::info("read side: " + instance_name_ + " holds the projection lease and projects");
}

void PgSharedReadSide::stop_runner() {
  std::unique_ptr<ProjectionRunner> runner;
  {
    std::lock_guard lock(mutex_);
    runner = std::move(runner_);
  }
  if (runner) runner->stop();
  runner.reset();
  runner_store_.reset();
  runner_log_.reset();
  projecting_.store(false);
}

}  // namespace wallex
