// run_load: sends requests over many HTTP/1.1 keep-alive connections from a few threads, one
// request in flight per connection, and reports every outcome to a RequestSource.
//
// Each thread owns an epoll instance and its share of the connections (non-blocking sockets,
// TCP_NODELAY). Requests are numbered 0..request_count-1 and claimed from one shared schedule:
//   closed loop (rate_per_second == 0): a connection claims the next request as soon as its
//     previous reply arrived; latency runs from the moment the request is sent. With
//     duration_ms > 0 no request is started after that time.
//   open loop (rate_per_second > 0): request i is due at start + i / rate. It is sent when it is
//     due and a connection is free; latency runs from the time it was DUE, so time spent waiting
//     for a free connection is counted (no coordinated omission).
// A connection opens lazily with its first request and reopens after the server closes it or a
// request fails. Failures are never retried: a timeout or a lost connection is reported as such
// (its effect on the server is unknown).
//
// Threading: RequestSource::write_request may be called concurrently from every engine thread;
// on_reply/on_failure for a request run on the thread that sent it, identified by `thread`
// (0..threads-1), so a source can keep per-thread state without locks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "bench/endpoint.h"
#include "common/result.h"

namespace wallex::bench {

enum class TransportFailure { kConnect, kConnectionLost, kTimeout, kMalformedResponse };

// A stable name for reports: "CONNECT_FAILED", "CONNECTION_LOST", "TIMEOUT", "BAD_RESPONSE".
std::string_view transport_failure_code(TransportFailure failure);

struct HttpReply {
  int status = 0;
  std::string_view body;  // valid only during the callback
};

class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // Appends the complete HTTP request number `index` to `out`.
  virtual void write_request(std::uint64_t index, std::string& out) = 0;
  // Exactly one of these two is called for every request that was started.
  virtual void on_reply(int thread, std::uint64_t index, const HttpReply& reply,
                        std::int64_t latency_us) = 0;
  virtual void on_failure(int thread, std::uint64_t index, TransportFailure failure,
                          std::int64_t latency_us) = 0;
};

struct LoadPlan {
  std::uint64_t request_count = 0;  // closed loop: at most this many; open loop: exactly
  int connections = 20;
  int threads = 1;
  double rate_per_second = 0;        // > 0: open loop
  std::int64_t duration_ms = 0;      // closed loop only: no new request after this (0: no limit)
  std::int64_t timeout_ms = 10'000;  // per request, from the moment it was started
};

struct LoadResult {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;  // replies and failures
  std::int64_t elapsed_us = 0;  // from the start to the last completion
};

// Called about once per second from the calling thread while the load runs.
using ProgressTick = std::function<void(std::uint64_t completed, std::int64_t elapsed_us)>;

// Fails only when the load could not run at all (name resolution, no epoll); per-request
// failures go to the source.
Result<LoadResult, std::string> run_load(const Endpoint& endpoint, const LoadPlan& plan,
                                         RequestSource& source, const ProgressTick& tick);

}  // namespace wallex::bench
