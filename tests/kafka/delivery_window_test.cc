#include "kafka/delivery_window.h"

#include <gtest/gtest.h>

namespace wallex {
namespace {

TEST(DeliveryWindowTest, ThePublishedPositionIsTheContiguousPrefix) {
  DeliveryWindow window(10);
  EXPECT_EQ(window.last_sent(), 10);
  for (std::int64_t p : {11, 12, 14, 15}) window.sent(p, p * 100);  // 13: a gap in the log
  EXPECT_EQ(window.oldest_in_flight_ms(), 1100);
  EXPECT_TRUE(window.delivered(14).has_value());
  EXPECT_TRUE(window.delivered(12).has_value());
  EXPECT_EQ(window.published(), 10);  // 11 is not confirmed yet
  EXPECT_EQ(window.oldest_in_flight_ms(), 1100);
  EXPECT_TRUE(window.delivered(11).has_value());
  EXPECT_EQ(window.published(), 14);  // 11, 12 and 14 (13 was never in the log)
  EXPECT_EQ(window.in_flight(), 1u);
  EXPECT_EQ(window.oldest_in_flight_ms(), 1500);
  EXPECT_FALSE(window.delivered(14).has_value());  // a duplicate report changes nothing
  EXPECT_FALSE(window.delivered(99).has_value());
  EXPECT_EQ(window.delivered(15), std::optional<TimestampMs>(1500));  // its occurredAt
  EXPECT_EQ(window.published(), 15);
  EXPECT_EQ(window.in_flight(), 0u);
  EXPECT_EQ(window.oldest_in_flight_ms(), 0);
}

TEST(DeliveryWindowTest, ARewindResendsFromThePublishedPosition) {
  DeliveryWindow window;
  for (std::int64_t p = 1; p <= 5; ++p) window.sent(p, 0);
  EXPECT_TRUE(window.delivered(1).has_value());
  EXPECT_TRUE(window.delivered(3).has_value());  // 2 failed: 3 must not count as published
  window.rewind();
  EXPECT_EQ(window.published(), 1);
  EXPECT_EQ(window.last_sent(), 1);
  EXPECT_EQ(window.in_flight(), 0u);
  window.sent(2, 0);                              // sent again, from the position after the prefix
  EXPECT_FALSE(window.delivered(3).has_value());  // a late report from before the rewind is ignored
  EXPECT_TRUE(window.delivered(2).has_value());
  EXPECT_EQ(window.published(), 2);
}

TEST(DeliveryWindowDeathTest, PositionsMustIncrease) {
  DeliveryWindow window(5);
  EXPECT_DEATH(window.sent(5, 0), "");
}

}  // namespace
}  // namespace wallex
