// LatencyHistogram: latencies in microseconds with a bounded relative error (HDR-style,
// log-linear buckets), so percentiles of millions of samples cost a few kilobytes.
//
// Values below 2 * kSubBuckets are counted exactly. Above, every power-of-two range [2^m, 2^(m+1))
// is split into kSubBuckets equal buckets, so a bucket is narrower than 1/kSubBuckets (0.78%) of
// any value in it. A percentile is reported as the upper edge of its bucket (never above the
// exact maximum), hence it is >= the exact nearest-rank value and at most 0.78% above it.
// Values above kValueMaxUs (about 71 minutes) are counted as kValueMaxUs; min and max are exact.
//
// Not thread-safe: each thread records into its own histogram, merged afterwards.
#pragma once

#include <cstdint>
#include <vector>

namespace wallex::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr std::int64_t kSubBuckets = std::int64_t{1} << kSubBucketBits;
  static constexpr std::int64_t kValueMaxUs = (std::int64_t{1} << 32) - 1;

  LatencyHistogram();

  // Negative values (a clock that stepped back) count as 0.
  void record(std::int64_t value_us);
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  std::int64_t min_us() const { return count_ == 0 ? 0 : min_us_; }
  std::int64_t max_us() const { return max_us_; }
  double mean_us() const;
  // Nearest rank: the smallest recorded value v such that at least `percentile`% of values are
  // <= v, within the error stated above. 0 when empty. `percentile` in [0, 100].
  std::int64_t percentile_us(double percentile) const;

 private:
  static std::size_t bucket_of(std::int64_t value_us);
  static std::int64_t bucket_upper_us(std::size_t bucket);

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::int64_t min_us_ = 0;
  std::int64_t max_us_ = 0;
  double sum_us_ = 0;  // only for the mean; exact counts live in counts_
};

}  // namespace wallex::bench
