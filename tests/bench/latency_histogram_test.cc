#include "bench/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace wallex::bench {
namespace {

// The exact nearest-rank percentile of sorted values.
std::int64_t exact_percentile(const std::vector<std::int64_t>& sorted, double percentile) {
  auto rank = static_cast<std::size_t>(
      std::ceil(percentile / 100.0 * static_cast<double>(sorted.size()) - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

TEST(LatencyHistogram, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0U);
  EXPECT_EQ(h.percentile_us(50), 0);
  EXPECT_EQ(h.max_us(), 0);
  EXPECT_EQ(h.min_us(), 0);
  EXPECT_EQ(h.mean_us(), 0.0);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100U);
  EXPECT_EQ(h.min_us(), 1);
  EXPECT_EQ(h.max_us(), 100);
  EXPECT_EQ(h.percentile_us(50), 50);
  EXPECT_EQ(h.percentile_us(90), 90);
  EXPECT_EQ(h.percentile_us(99), 99);
  EXPECT_EQ(h.percentile_us(99.9), 100);
  EXPECT_EQ(h.percentile_us(100), 100);
  EXPECT_EQ(h.percentile_us(0), 1);
  EXPECT_DOUBLE_EQ(h.mean_us(), 50.5);
}

TEST(LatencyHistogram, PercentilesWithinOnePercentOfExact) {
  std::mt19937_64 random(7);
  // Log-uniform from 1 us to 1000 s: every bucket size is exercised.
  std::uniform_real_distribution<double> exponent(0.0, 9.0);
  std::vector<std::int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<std::int64_t>(std::pow(10.0, exponent(random)));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const std::int64_t exact = exact_percentile(values, p);
    const std::int64_t reported = h.percentile_us(p);
    EXPECT_GE(reported, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(reported), static_cast<double>(exact) * 1.01) << "p" << p;
  }
  EXPECT_EQ(h.min_us(), values.front());
  EXPECT_EQ(h.max_us(), values.back());
}

TEST(LatencyHistogram, BucketEdgesKeepTheBound) {
  // Values right at and around powers of two, where bucket widths change.
  for (int bit = 8; bit < 32; ++bit) {
    for (std::int64_t delta : {-1, 0, 1}) {
      const std::int64_t v = (std::int64_t{1} << bit) + delta;
      LatencyHistogram h;
      h.record(v);
      h.record(v * 2);  // so max does not simply clamp the answer
      const std::int64_t reported = h.percentile_us(50);
      EXPECT_GE(reported, v);
      EXPECT_LE(static_cast<double>(reported), static_cast<double>(v) * 1.01) << v;
    }
  }
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram all;
  for (std::int64_t v = 0; v < 50'000; v += 7) {
    (v % 2 == 0 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min_us(), all.min_us());
  EXPECT_EQ(a.max_us(), all.max_us());
  for (double p : {1.0, 50.0, 99.0, 99.9}) EXPECT_EQ(a.percentile_us(p), all.percentile_us(p));
  LatencyHistogram empty;
  a.merge(empty);
  EXPECT_EQ(a.count(), all.count());
  empty.merge(all);
  EXPECT_EQ(empty.min_us(), all.min_us());
}

TEST(LatencyHistogram, ClampsOutOfRangeValues) {
  LatencyHistogram h;
  h.record(-5);
  h.record(LatencyHistogram::kValueMaxUs * 4);
  EXPECT_EQ(h.min_us(), 0);
  EXPECT_EQ(h.max_us(), LatencyHistogram::kValueMaxUs);
  EXPECT_EQ(h.percentile_us(100), LatencyHistogram::kValueMaxUs);
}

}  // namespace
}  // namespace wallex::bench
