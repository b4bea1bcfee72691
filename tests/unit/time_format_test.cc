#include "common/time_format.h"

#include <gtest/gtest.h>

namespace wallex {
namespace {

TEST(TimeFormat, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_iso8601_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_iso8601_ms(1'764'107'141'123), "2025-11-25T21:45:41.123Z");
  EXPECT_EQ(format_iso8601_ms(951'782'400'000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(format_iso8601_ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_iso8601_ms(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  // Outside four-digit years (not a timestamp Wallex makes) the text is still complete.
  EXPECT_EQ(format_iso8601_ms(253'402'300'800'000), "10000-01-01T00:00:00.000Z");
}

TEST(TimeFormat, ParsesWhatItFormats) {
  for (TimestampMs ms : {0LL, 1LL, 951'782'400'000LL, 1'764'107'141'123LL, 4'102'444'799'999LL}) {
    EXPECT_EQ(parse_iso8601(format_iso8601_ms(ms)), ms);
  }
}

TEST(TimeFormat, ParsesDatesAndOffsets) {
  EXPECT_EQ(parse_iso8601("1970-01-02"), 86'400'000);
  EXPECT_EQ(parse_iso8601("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00-00:30"), 1'800'000);
  EXPECT_EQ(parse_iso8601("1970-01-01T00:00:00.5Z"), 500);
}

TEST(TimeFormat, RejectsNonsense) {
  for (const char* text : {"", "yesterday", "2025-13-01", "2025-02-30", "2025-11-25T25:00:00Z",
                           "2025-11-25T10:00:00", "2025-11-25T10:00Z", "2025-11-25 10:00:00Z",
                           "2025-11-25T10:00:00.Z", "2025-11-25T10:00:00+1:00"}) {
    EXPECT_FALSE(parse_iso8601(text).has_value()) << text;
  }
}

}  // namespace
}  // namespace wallex
