#include "kafka/lag_histogram.h"

#include <gtest/gtest.h>

namespace wallex {
namespace {

TEST(LagHistogramTest, PercentilesAreBucketUpperBounds) {
  LagHistogram histogram;
  EXPECT_EQ(histogram.percentile(0.5), 0);
  for (int i = 0; i < 98; ++i) histogram.add(3);  // 98 samples in [3, 4)
  histogram.add(250);                             // [250, 260)
  histogram.add(70'000);                          // beyond 60 s
  EXPECT_EQ(histogram.count(), 100u);
  EXPECT_EQ(histogram.percentile(0.5), 4);
  EXPECT_EQ(histogram.percentile(0.98), 4);
  EXPECT_EQ(histogram.percentile(0.99), 260);
  EXPECT_EQ(histogram.percentile(1.0), 70'000);
  EXPECT_EQ(histogram.max(), 70'000);
  histogram.add(-5);  // a clock step backwards counts as 0 ms
  EXPECT_EQ(histogram.percentile(0.001), 1);
}

}  // namespace
}  // namespace wallex
