#include "projection/query_service.h"

#include <pthread.h>

#include <algorithm>

#include "service/reply_encoding.h"

namespace wallex {

QueryReply query_error(ErrorCode code, std::string_view message) {
  QueryReply reply;
  reply.status = http_status(code);
  reply.body = encode_error(code, message);
  if (reply.status == 503) reply.headers.emplace_back("Retry-After", "1");
  return reply;
}

QueryService::QueryService(std::unique_ptr<ReadStore> store,
                           std::function<std::int64_t(ProjectorId)> checkpoint_of,
                           QueryOptions options)
    : store_(std::move(store)), checkpoint_of_(std::move(checkpoint_of)), options_(options) {}

QueryService::~QueryService() { stop(); }

void QueryService::start() {
  std::lock_guard lock(mutex_);
  if (running_) return;
  running_ = true;
  stopping_ = false;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "wallex-query");
    run();
  });
}

void QueryService::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  std::lock_guard lock(mutex_);
  running_ = false;
}

void QueryService::submit(ProjectorId projector, std::int64_t min_position, QueryFunction query,
                          QueryDone done) {
  const bool reached = min_position <= 0 || checkpoint_of_(projector) >= min_position;
  {
    std::unique_lock lock(mutex_);
    if (!running_ || stopping_) {
      lock.unlock();
      done(query_error(ErrorCode::kShuttingDown, "The server is shutting down"));
      return;
    }
    if (ready_.size() + waiting_.size() >= options_.queue_length_max) {
      lock.unlock();
      done(query_error(ErrorCode::kOverloaded, "Too many queries in progress"));
      return;
    }
    Pending pending{
        projector, min_position,
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.wait_max_ms),
        std::move(query), std::move(done)};
    if (reached) {
      ready_.push_back(std::move(pending));
    } else {
      waiting_.push_back(std::move(pending));
      // The projector may have passed min_position since `reached` was read, its notification
      // finding no waiter: have the query thread look at the checkpoints again.
      progressed_ = true;
    }
  }
  changed_.notify_one();
  if (!reached && on_wait_) on_wait_();
}

void QueryService::notify_progress() {
  {
    std::lock_guard lock(mutex_);
    if (waiting_.empty()) return;
    progressed_ = true;
  }
  changed_.notify_one();
}

void QueryService::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    // Waiting queries whose position is reached become ready; expired ones are answered.
    std::vector<Pending> expired;
    if (!waiting_.empty()) {
      const auto now = std::chrono::steady_clock::now();
      std::vector<Pending> still;
      for (Pending& pending : waiting_) {
        if (checkpoint_of_(pending.projector) >= pending.min_position) {
          ready_.push_back(std::move(pending));
        } else if (stopping_ || now >= pending.deadline) {
          expired.push_back(std::move(pending));
        } else {
          still.push_back(std::move(pending));
        }
      }
      waiting_.swap(still);
    }
    progressed_ = false;
    if (!expired.empty()) {
      lock.unlock();
      for (Pending& pending : expired) {
        const std::int64_t reached = checkpoint_of_(pending.projector);
        QueryReply reply = query_error(ErrorCode::kProjectionBehind,
                                       "The " + std::string(projector_name(pending.projector)) +
                                           " projection is at position " + std::to_string(reached) +
                                           ", behind minPosition " +
                                           std::to_string(pending.min_position) + "; retry later");
        pending.done(std::move(reply));
      }
      lock.lock();
      continue;
    }
    if (!ready_.empty()) {
      Pending pending = std::move(ready_.front());
      ready_.pop_front();
      lock.unlock();
      // Read before the query runs: the data it reads is at least at this position.
      const std::int64_t position = checkpoint_of_(pending.projector);
      // One snapshot for all the statements of a query (a summary's totals and its last entry
      // agree even if a projector batch commits meanwhile).
      QueryReply reply;
      if (auto pinned = store_->begin_read(); !pinned) {
        reply = query_error(ErrorCode::kStoreUnavailable,
                            "The read side is unavailable: " + pinned.error().message);
      } else {
        reply = pending.query(*store_);
        store_->end_read();
      }
      reply.headers.emplace_back("X-Wallex-Position", std::to_string(position));
      pending.done(std::move(reply));
      lock.lock();
      continue;
    }
    if (stopping_) return;
    if (waiting_.empty()) {
      changed_.wait(lock, [this] {
        return stopping_ || progressed_ || !ready_.empty() || !waiting_.empty();
      });
    } else {
      auto deadline = waiting_.front().deadline;
      for (const Pending& pending : waiting_) deadline = std::min(deadline, pending.deadline);
      changed_.wait_until(lock, deadline,
                          [this] { return stopping_ || progressed_ || !ready_.empty(); });
    }
  }
}

}  // namespace wallex
