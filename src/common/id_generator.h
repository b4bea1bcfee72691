// IdGenerator: makes the ids Wallex invents (transfer ids, correlation ids). Injected so tests and
// simulations get reproducible ids.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <utility>

#include "common/clock.h"

namespace wallex {

// 128 random bits as a version 4 UUID's text (lowercase, 8-4-4-4-12): the version and variant bits
// are set over the draws.
std::string version4_uuid(std::uint64_t high, std::uint64_t low);

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  // A random (version 4) UUID in canonical lowercase text form.
  virtual std::string next_uuid() = 0;
  // A time-ordered (version 7, RFC 9562) UUID: the 48-bit Unix time in milliseconds, then 74
  // random bits. Ids made later sort after ids made earlier (within a millisecond: randomly).
  virtual std::string next_time_ordered_uuid(TimestampMs now_ms) = 0;
};

// Seeded from std::random_device unless a seed is given. Thread-safe.
class RandomIdGenerator final : public IdGenerator {
 public:
  RandomIdGenerator();
  explicit RandomIdGenerator(std::uint64_t seed);
  std::string next_uuid() override;
  std::string next_time_ordered_uuid(TimestampMs now_ms) override;

 private:
  std::pair<std::uint64_t, std::uint64_t> draw_two();  // two draws in order, under the mutex

  std::mutex mutex_;
  std::mt19937_64 engine_;
};

}  // namespace wallex
