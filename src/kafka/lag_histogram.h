// LagHistogram: counts of durations in ms, in buckets of 1 ms up to 100 ms, 10 ms up to 1 s,
// 100 ms up to 60 s, and one bucket beyond; percentiles are reported as the bucket's upper
// bound (so never below the true value). Bounded memory whatever the number of samples.
//
// Thread safety: add() and percentile() may be called from any thread (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

namespace wallex {

class LagHistogram {
 public:
  void add(std::int64_t ms);
  // The smallest bucket bound below which `fraction` (0..1] of the samples lie; 0 when empty.
  std::int64_t percentile(double fraction) const;
  std::int64_t max() const;
  std::uint64_t count() const;

 private:
  static constexpr std::size_t kBuckets = 100 + 90 + 590 + 1;
  static std::size_t bucket_of(std::int64_t ms);
  static std::int64_t upper_bound_of(std::size_t bucket);

  mutable std::mutex mutex_;
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::int64_t max_ = 0;
};

}  // namespace wallex
