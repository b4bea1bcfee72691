// QueryService: runs read-side queries on its own thread and connection, so the HTTP I/O thread
// never waits for read.db, and holds back queries that ask for a position the projection has not
// reached yet (minPosition) without blocking anyone.
//
//   submit(projector, min_position, query, done)
//     checkpoint(projector) >= min_position ─▶ queue ─▶ query thread: done(query(store))
//     otherwise ─▶ waiting list; moved to the queue by notify_progress() once the checkpoint is
//     reached, or answered 503 PROJECTION_BEHIND (Retry-After: 1) after wait_max_ms.
//
// Bounded: at most queue_length_max queued plus waiting queries; more are answered 503
// OVERLOADED at once. `done` is called exactly once, on the query thread (or on the caller's
// thread for an immediate refusal); it must not block.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "domain/errors.h"
#include "projection/read_store.h"

namespace wallex {

// The answer to a query: an HTTP status, a JSON body and extra headers.
struct QueryReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

QueryReply query_error(ErrorCode code, std::string_view message);

struct QueryOptions {
  int wait_max_ms = 2'000;  // longest wait for minPosition
  std::size_t queue_length_max = 10'000;
};

using QueryFunction = std::function<QueryReply(ReadStore&)>;
using QueryDone = std::function<void(QueryReply&&)>;

class QueryService {
 public:
  // `checkpoint_of` gives a projector's committed position (ProjectionRunner::checkpoint).
  QueryService(std::unique_ptr<ReadStore> store,
               std::function<std::int64_t(ProjectorId)> checkpoint_of, QueryOptions options = {});
  ~QueryService();
  QueryService(const QueryService&) = delete;
  QueryService& operator=(const QueryService&) = delete;

  void start();
  // Answers everything still queued or waiting (waiting ones with 503) and joins the thread.
  void stop();

  void submit(ProjectorId projector, std::int64_t min_position, QueryFunction query,
              QueryDone done);
  // A projector committed: waiting queries may be ready. Cheap; callable from any thread.
  void notify_progress();
  // Called (on the submitting thread) whenever a query starts waiting for its minPosition, so
  // the projector can run its next batch now. Set before start().
  void set_on_wait(std::function<void()> on_wait) { on_wait_ = std::move(on_wait); }

 private:
  struct Pending {
    ProjectorId projector;
    std::int64_t min_position;
    std::chrono::steady_clock::time_point deadline;
    QueryFunction query;
    QueryDone done;
  };
  void run();

  std::unique_ptr<ReadStore> store_;
  std::function<std::int64_t(ProjectorId)> checkpoint_of_;
  std::function<void()> on_wait_;
  const QueryOptions options_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Pending> ready_;
  std::vector<Pending> waiting_;
  bool progressed_ = false;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wallex
