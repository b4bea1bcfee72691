#include "bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "common/check.h"

namespace wallex::bench {
namespace {

constexpr std::int64_t kExactLimit = 2 * LatencyHistogram::kSubBuckets;
// Highest power of two in range: values of kValueMaxUs have their top bit at 31.
constexpr int kTopBitMax = 31;
constexpr std::size_t kBucketCount =
    static_cast<std::size_t>(kExactLimit) +
    static_cast<std::size_t>(kTopBitMax - LatencyHistogram::kSubBucketBits) *
        static_cast<std::size_t>(LatencyHistogram::kSubBuckets);

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBucketCount, 0) {}

std::size_t LatencyHistogram::bucket_of(std::int64_t value_us) {
  if (value_us < kExactLimit) return static_cast<std::size_t>(value_us);
  const int top_bit = 63 - std::countl_zero(static_cast<std::uint64_t>(value_us));
  const int shift = top_bit - kSubBucketBits;                  // bucket width is 2^shift
  const std::int64_t sub = (value_us >> shift) - kSubBuckets;  // in [0, kSubBuckets)
  return static_cast<std::size_t>(kExactLimit + (top_bit - kSubBucketBits - 1) * kSubBuckets + sub);
}

std::int64_t LatencyHistogram::bucket_upper_us(std::size_t bucket) {
  const auto index = static_cast<std::int64_t>(bucket);
  if (index < kExactLimit) return index;
  const std::int64_t above = index - kExactLimit;
  const std::int64_t shift = above / kSubBuckets + 1;
  const std::int64_t sub = above % kSubBuckets;
  return ((kSubBuckets + sub + 1) << shift) - 1;
}

void LatencyHistogram::record(std::int64_t value_us) {
  value_us = std::clamp<std::int64_t>(value_us, 0, kValueMaxUs);
  const std::size_t bucket = bucket_of(value_us);
  WALLEX_CHECK(bucket < counts_.size());
  ++counts_[bucket];
  min_us_ = count_ == 0 ? value_us : std::min(min_us_, value_us);
  max_us_ = std::max(max_us_, value_us);
  ++count_;
  sum_us_ += static_cast<double>(value_us);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_us_ = count_ == 0 ? other.min_us_ : std::min(min_us_, other.min_us_);
  max_us_ = std::max(max_us_, other.max_us_);
  count_ += other.count_;
  sum_us_ += other.sum_us_;
}

double LatencyHistogram::mean_us() const {
  return count_ == 0 ? 0.0 : sum_us_ / static_cast<double>(count_);
}

std::int64_t LatencyHistogram::percentile_us(double percentile) const {
  if (count_ == 0) return 0;
  percentile = std::clamp(percentile, 0.0, 100.0);
  // Nearest rank, 1-based; the small epsilon keeps 99.9% of 1000 at rank 999, not 1000.
  const double exact_rank = percentile / 100.0 * static_cast<double>(count_);
  auto rank = static_cast<std::uint64_t>(std::ceil(exact_rank - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket) {
    seen += counts_[bucket];
    if (seen >= rank) return std::clamp(bucket_upper_us(bucket), min_us_, max_us_);
  }
  WALLEX_CHECK(false);  // counts_ sums to count_, so the loop always returns
  return max_us_;
}

}  // namespace wallex::bench
