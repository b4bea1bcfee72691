#include "bench/load_runner.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/http_response_parser.h"
#include "common/check.h"

namespace wallex::bench {
namespace {

constexpr std::int64_t kNsPerUs = 1'000;
constexpr std::int64_t kNsPerMs = 1'000'000;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kTimeoutScanIntervalNs = 20 * kNsPerMs;
constexpr std::size_t kReadChunkBytes = std::size_t{16} * 1024;
constexpr int kEventsPerWaitMax = 256;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

Result<Address, std::string> resolve(const Endpoint& endpoint) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  const int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    return fail("cannot resolve " + endpoint.host + ": " + gai_strerror(rc));
  }
  Address address;
  std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
  address.length = found->ai_addrlen;
  freeaddrinfo(found);
  return address;
}

// The shared schedule: which request comes next and when it is due.
class Schedule {
 public:
  Schedule(const LoadPlan& plan, std::int64_t start_ns)
      : count_(plan.request_count),
        start_ns_(start_ns),
        interval_ns_(plan.rate_per_second > 0 ? 1e9 / plan.rate_per_second : 0),
        stop_ns_(plan.rate_per_second <= 0 && plan.duration_ms > 0
                     ? start_ns + plan.duration_ms * kNsPerMs
                     : kNever) {}

  enum class Kind { kRequest, kWait, kExhausted };
  struct Claim {
    Kind kind = Kind::kExhausted;
    std::uint64_t index = 0;
    std::int64_t due_ns = 0;  // open loop: when it is/was due; kWait: when to ask again
  };

  bool open_loop() const { return interval_ns_ > 0; }

  Claim claim(std::int64_t now) {
    if (!open_loop()) {
      if (now >= stop_ns_) return Claim{};
      const std::uint64_t index = next_.fetch_add(1, std::memory_order_relaxed);
      if (index >= count_) return Claim{};
      return Claim{Kind::kRequest, index, now};
    }
    std::uint64_t index = next_.load(std::memory_order_relaxed);
    while (true) {
      if (index >= count_) return Claim{};
      const std::int64_t due =
          start_ns_ + static_cast<std::int64_t>(static_cast<double>(index) * interval_ns_);
      if (due > now) return Claim{Kind::kWait, index, due};
      if (next_.compare_exchange_weak(index, index + 1, std::memory_order_relaxed)) {
        return Claim{Kind::kRequest, index, due};
      }
    }
  }

 private:
  const std::uint64_t count_;
  const std::int64_t start_ns_;
  const double interval_ns_;
  const std::int64_t stop_ns_;
  std::atomic<std::uint64_t> next_{0};
};

// The bytes read from a connection. Unlike a std::string it grows without zero-filling the room
// each read may use (16 KiB a reply: that fill was ~4% of the generator's time).
class ReceiveBuffer {
 public:
  // Room for `bytes` more after the contents, which are kept.
  char* room(std::size_t bytes) {
    if (capacity_ - size_ < bytes) {
      const std::size_t capacity = std::max(size_ + bytes, capacity_ * 2);
      auto grown = std::make_unique_for_overwrite<char[]>(capacity);
      if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
      data_ = std::move(grown);
      capacity_ = capacity;
    }
    return data_.get() + size_;
  }
  void commit(std::size_t bytes) { size_ += bytes; }
  std::string_view view() const { return {data_.get(), size_}; }
  std::size_t size() const { return size_; }
  void clear() { size_ = 0; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

struct SharedCounters {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::int64_t> last_completion_ns{0};
};

// One engine thread: its connections and their state machines.
class ClientLoop {
 public:
  ClientLoop(int thread, int connections, const Address& address, const LoadPlan& plan,
             Schedule& schedule, RequestSource& source, SharedCounters& counters)
      : thread_(thread),
        address_(address),
        timeout_ns_(plan.timeout_ms * kNsPerMs),
        schedule_(schedule),
        source_(source),
        counters_(counters),
        connections_(static_cast<std::size_t>(connections)) {
    for (std::size_t i = connections_.size(); i > 0; --i) idle_.push_back(i - 1);
  }
  ~ClientLoop() {
    for (Connection& c : connections_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  // Runs until the schedule is exhausted and every started request has completed.
  Status<std::string> run();

 private:
  enum class State { kIdle, kConnecting, kSending, kReceiving };
  struct Connection {
    int fd = -1;
    State state = State::kIdle;
    std::uint32_t interest = 0;  // epoll events currently registered
    std::string out;
    std::size_t out_sent = 0;
    ReceiveBuffer in;
    std::uint64_t index = 0;
    std::int64_t origin_ns = 0;    // latency is measured from here
    std::int64_t deadline_ns = 0;  // the request fails with a timeout after this
  };

  void start(std::size_t id, const Schedule::Claim& claim);
  bool open(Connection& c, std::size_t id);
  void send_some(std::size_t id);
  void on_event(std::size_t id, std::uint32_t events);
  void on_readable(std::size_t id);
  void set_interest(Connection& c, std::size_t id, std::uint32_t events);
  void close_socket(Connection& c);
  void complete(std::size_t id);
  void fail_request(std::size_t id, TransportFailure failure);
  void expire_timeouts(std::int64_t now);

  const int thread_;
  const Address& address_;
  const std::int64_t timeout_ns_;
  Schedule& schedule_;
  RequestSource& source_;
  SharedCounters& counters_;
  std::vector<Connection> connections_;
  std::vector<std::size_t> idle_;  // connections without a request
  std::size_t active_ = 0;         // connections with a request
  int epoll_fd_ = -1;
};

Status<std::string> ClientLoop::run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return fail(std::string("epoll_create1: ") + std::strerror(errno));
  epoll_event events[kEventsPerWaitMax];
  bool exhausted = false;
  std::int64_t next_scan_ns = now_ns() + kTimeoutScanIntervalNs;
  while (true) {
    std::int64_t now = now_ns();
    std::int64_t wake_ns = kNever;
    while (!idle_.empty() && !exhausted) {
      const Schedule::Claim claim = schedule_.claim(now);
      if (claim.kind == Schedule::Kind::kExhausted) {
        exhausted = true;
      } else if (claim.kind == Schedule::Kind::kWait) {
        wake_ns = claim.due_ns;
        break;
      } else {
        const std::size_t id = idle_.back();
        idle_.pop_back();
        start(id, claim);
        now = now_ns();
      }
    }
    if (exhausted && active_ == 0) break;
    if (now >= next_scan_ns) {
      expire_timeouts(now);
      next_scan_ns = now + kTimeoutScanIntervalNs;
      continue;  // expired requests freed connections: hand out work first
    }
    if (active_ > 0) wake_ns = std::min(wake_ns, next_scan_ns);
    // Nanosecond wait: open-loop requests leave when due, not at the next millisecond tick.
    timespec wait{};
    timespec* wait_ptr = nullptr;
    if (wake_ns != kNever) {
      const std::int64_t wait_ns = std::max<std::int64_t>(0, wake_ns - now);
      wait.tv_sec = wait_ns / 1'000'000'000;
      wait.tv_nsec = wait_ns % 1'000'000'000;
      wait_ptr = &wait;
    }
    const int ready = epoll_pwait2(epoll_fd_, events, kEventsPerWaitMax, wait_ptr, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("epoll_pwait2: ") + std::strerror(errno));
    }
    for (int i = 0; i < ready; ++i) on_event(events[i].data.u32, events[i].events);
  }
  return Ok{};
}

void ClientLoop::start(std::size_t id, const Schedule::Claim& claim) {
  Connection& c = connections_[id];
  WALLEX_CHECK(c.state == State::kIdle);
  const std::int64_t now = now_ns();
  c.index = claim.index;
  // Closed loop: from the send; open loop: from when the request was due.
  c.origin_ns = schedule_.open_loop() ? claim.due_ns : now;
  c.deadline_ns = now + timeout_ns_;
  c.out.clear();
  c.out_sent = 0;
  c.in.clear();
  source_.write_request(c.index, c.out);
  ++active_;
  counters_.started.fetch_add(1, std::memory_order_relaxed);
  if (c.fd < 0) {
    if (!open(c, id)) return fail_request(id, TransportFailure::kConnect);
    if (c.state == State::kConnecting) return;
  }
  send_some(id);
}

bool ClientLoop::open(Connection& c, std::size_t id) {
  const int fd =
      ::socket(address_.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.fd = fd;
  c.interest = 0;
  const int rc =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address_.storage), address_.length);
  if (rc != 0 && errno != EINPROGRESS) {
    close_socket(c);
    return false;
  }
  c.state = rc == 0 ? State::kSending : State::kConnecting;
  set_interest(c, id, rc == 0 ? EPOLLIN : EPOLLOUT);
  return c.fd >= 0;
}

void ClientLoop::set_interest(Connection& c, std::size_t id, std::uint32_t events) {
  if (c.interest == events) return;
  epoll_event event{};
  event.events = events;
  event.data.u32 = static_cast<std::uint32_t>(id);
  const int op = c.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  // Cannot fail for a valid socket we own; if it does, the state machine is broken.
  WALLEX_CHECK(epoll_ctl(epoll_fd_, op, c.fd, &event) == 0);
  c.interest = events;
}

void ClientLoop::close_socket(Connection& c) {
  if (c.fd >= 0) ::close(c.fd);  // also removes it from the epoll set
  c.fd = -1;
  c.interest = 0;
  c.in.clear();
}

void ClientLoop::send_some(std::size_t id) {
  Connection& c = connections_[id];
  while (c.out_sent < c.out.size()) {
    const ssize_t n =
        ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c.state = State::kSending;
      set_interest(c, id, EPOLLIN | EPOLLOUT);
      return;
    } else {
      return fail_request(id, TransportFailure::kConnectionLost);
    }
  }
  c.state = State::kReceiving;
  set_interest(c, id, EPOLLIN);
}

void ClientLoop::on_event(std::size_t id, std::uint32_t events) {
  WALLEX_CHECK(id < connections_.size());
  Connection& c = connections_[id];
  if (c.fd < 0) return;  // closed earlier in this batch of events
  switch (c.state) {
    case State::kConnecting: {
      int error = 0;
      socklen_t length = sizeof error;
      if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
        return fail_request(id, TransportFailure::kConnect);
      }
      return send_some(id);
    }
    case State::kSending:
      if ((events & EPOLLOUT) != 0) send_some(id);
      if (c.state == State::kSending && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
        on_readable(id);  // the server answered early or closed: read what it says
      }
      return;
    case State::kReceiving:
      return on_readable(id);
    case State::kIdle:
      // An idle keep-alive connection became readable: the server closed it (idle timeout,
      // shutdown). Nothing is lost; the next request opens a new connection.
      close_socket(c);
      return;
  }
}

void ClientLoop::on_readable(std::size_t id) {
  Connection& c = connections_[id];
  bool closed = false;
  while (true) {
    const ssize_t n = ::recv(c.fd, c.in.room(kReadChunkBytes), kReadChunkBytes, 0);
    if (n > 0) {
      c.in.commit(static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < kReadChunkBytes) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    closed = true;  // EOF or a socket error
    break;
  }
  const ParsedResponse parsed = parse_http_response(c.in.view());
  if (parsed.state == ParseState::kMalformed)
    return fail_request(id, TransportFailure::kMalformedResponse);
  if (parsed.state == ParseState::kIncomplete) {
    if (closed) fail_request(id, TransportFailure::kConnectionLost);
    return;
  }
  if (c.state == State::kSending) {
    // A complete reply before the whole request was sent: the server gave up on the request
    // (e.g. 413). Deliver the reply; the connection cannot be reused.
    closed = true;
  }
  const std::int64_t now = now_ns();
  source_.on_reply(thread_, c.index, HttpReply{parsed.status, parsed.body},
                   (now - c.origin_ns) / kNsPerUs);
  // One request in flight: bytes after the reply were never asked for, so the stream is no
  // longer trustworthy.
  if (closed || !parsed.keep_alive || parsed.consumed != c.in.size()) close_socket(c);
  c.in.clear();
  complete(id);
}

void ClientLoop::complete(std::size_t id) {
  Connection& c = connections_[id];
  c.state = State::kIdle;
  if (c.fd >= 0) set_interest(c, id, EPOLLIN);  // to notice the server closing it while idle
  --active_;
  idle_.push_back(id);
  counters_.completed.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t now = now_ns();
  std::int64_t last = counters_.last_completion_ns.load(std::memory_order_relaxed);
  while (last < now && !counters_.last_completion_ns.compare_exchange_weak(last, now)) {
  }
}

void ClientLoop::fail_request(std::size_t id, TransportFailure failure) {
  Connection& c = connections_[id];
  close_socket(c);
  source_.on_failure(thread_, c.index, failure, (now_ns() - c.origin_ns) / kNsPerUs);
  complete(id);
}

void ClientLoop::expire_timeouts(std::int64_t now) {
  for (std::size_t id = 0; id < connections_.size(); ++id) {
    const Connection& c = connections_[id];
    if (c.state != State::kIdle && now >= c.deadline_ns)
      fail_request(id, TransportFailure::kTimeout);
  }
}

}  // namespace

std::string_view transport_failure_code(TransportFailure failure) {
  switch (failure) {
    case TransportFailure::kConnect:
      return "CONNECT_FAILED";
    case TransportFailure::kConnectionLost:
      return "CONNECTION_LOST";
    case TransportFailure::kTimeout:
      return "TIMEOUT";
    case TransportFailure::kMalformedResponse:
      return "BAD_RESPONSE";
  }
  return "?";
}

Result<LoadResult, std::string> run_load(const Endpoint& endpoint, const LoadPlan& plan,
                                         RequestSource& source, const ProgressTick& tick) {
  WALLEX_CHECK(plan.connections >= 1 && plan.threads >= 1 && plan.timeout_ms > 0);
  auto address = resolve(endpoint);
  if (!address) return fail(address.error());
  const int threads = std::min(plan.threads, plan.connections);

  const std::int64_t start_ns = now_ns();
  Schedule schedule(plan, start_ns);
  SharedCounters counters;
  counters.last_completion_ns.store(start_ns);
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  std::mutex done_mutex;
  std::condition_variable done_changed;
  int running = threads;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    // Connections split as evenly as possible: the first (connections % threads) get one more.
    const int share = plan.connections / threads + (t < plan.connections % threads ? 1 : 0);
    workers.emplace_back([&, t, share] {
      ClientLoop loop(t, share, address.value(), plan, schedule, source, counters);
      auto ran = loop.run();
      std::lock_guard lock(done_mutex);
      if (!ran) errors[static_cast<std::size_t>(t)] = ran.error();
      --running;
      done_changed.notify_all();
    });
  }
  {
    std::unique_lock lock(done_mutex);
    while (!done_changed.wait_for(lock, std::chrono::seconds(1), [&] { return running == 0; })) {
      lock.unlock();
      if (tick) tick(counters.completed.load(), (now_ns() - start_ns) / kNsPerUs);
      lock.lock();
    }
  }
  for (std::thread& worker : workers) worker.join();
  for (const std::string& error : errors) {
    if (!error.empty()) return fail(error);
  }
  LoadResult result;
  result.started = counters.started.load();
  result.completed = counters.completed.load();
  result.elapsed_us = (counters.last_completion_ns.load() - start_ns) / kNsPerUs;
  return result;
}

}  // namespace wallex::bench
