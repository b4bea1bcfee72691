#include "kafka/lag_histogram.h"

#include <algorithm>
#include <cmath>

namespace wallex {

std::size_t LagHistogram::bucket_of(std::int64_t ms) {
  ms = std::max<std::int64_t>(ms, 0);
  if (ms < 100) return static_cast<std::size_t>(ms);                           // [ms, ms+1)
  if (ms < 1'000) return static_cast<std::size_t>(100 + (ms - 100) / 10);      // 10 ms wide
  if (ms < 60'000) return static_cast<std::size_t>(190 + (ms - 1'000) / 100);  // 100 ms wide
  return kBuckets - 1;
}

std::int64_t LagHistogram::upper_bound_of(std::size_t bucket) {
  const auto b = static_cast<std::int64_t>(bucket);
  if (b < 100) return b + 1;
  if (b < 190) return 100 + (b - 100 + 1) * 10;
  if (b < 780) return 1'000 + (b - 190 + 1) * 100;
  return -1;  // beyond 60 s: the caller reports max()
}

void LagHistogram::add(std::int64_t ms) {
  std::lock_guard lock(mutex_);
  ++counts_[bucket_of(ms)];
  ++total_;
  max_ = std::max(max_, ms);
}

std::int64_t LagHistogram::percentile(double fraction) const {
  std::lock_guard lock(mutex_);
  if (total_ == 0) return 0;
  const auto wanted = static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(total_)));
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= std::max<std::uint64_t>(wanted, 1)) {
      const std::int64_t bound = upper_bound_of(b);
      return bound < 0 ? max_ : std::min(bound, std::max<std::int64_t>(max_, 1));
    }
  }
  return max_;
}

std::int64_t LagHistogram::max() const {
  std::lock_guard lock(mutex_);
  return max_;
}

std::uint64_t LagHistogram::count() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace wallex
