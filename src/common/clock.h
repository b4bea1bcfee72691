// Clock: the source of wall-clock time, injected so tests and simulations control it.
// Times are milliseconds since the Unix epoch, UTC.
#pragma once

#include <atomic>
#include <cstdint>

namespace wallex {

using TimestampMs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimestampMs now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimestampMs now_ms() const override;
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimestampMs start_ms) : now_ms_(start_ms) {}
  TimestampMs now_ms() const override { return now_ms_.load(); }
  void advance_ms(TimestampMs delta_ms) { now_ms_.fetch_add(delta_ms); }

 private:
  std::atomic<TimestampMs> now_ms_;
};

}  // namespace wallex
