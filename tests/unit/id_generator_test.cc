#include "common/id_generator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <set>

namespace wallex {
namespace {

// The same two 64-bit draws formatted by snprintf, as the generator did before it wrote the
// digits itself.
std::string reference_uuid(std::uint64_t high, std::uint64_t low) {
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xffff),
                static_cast<unsigned>(high & 0xffff), static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

TEST(IdGenerator, Version4UuidsInTheCanonicalTextForm) {
  RandomIdGenerator ids(7);
  std::mt19937_64 same_draws(7);  // the generator's engine, seeded alike
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string uuid = ids.next_uuid();
    const std::uint64_t high = same_draws();
    const std::uint64_t low = same_draws();
    ASSERT_EQ(uuid, reference_uuid(high, low));
    ASSERT_EQ(uuid.size(), 36u);
    EXPECT_EQ(uuid[14], '4');
    EXPECT_NE(std::string("89ab").find(uuid[19]), std::string::npos) << uuid;
    EXPECT_TRUE(seen.insert(uuid).second);
  }
}

TEST(IdGenerator, Version7UuidsCarryTheTimeAndSortByIt) {
  RandomIdGenerator ids(11);
  const TimestampMs t0 = 1'795'700'000'123;  // 2026-11-26
  std::string previous;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const TimestampMs now = t0 + i / 10;  // ten ids per millisecond
    const std::string uuid = ids.next_time_ordered_uuid(now);
    ASSERT_EQ(uuid.size(), 36u);
    EXPECT_EQ(uuid[8], '-');
    EXPECT_EQ(uuid[23], '-');
    EXPECT_EQ(uuid[14], '7') << uuid;
    EXPECT_NE(std::string("89ab").find(uuid[19]), std::string::npos) << uuid;
    // The first 48 bits (12 hex digits, dash skipped) are the milliseconds.
    const std::string millis_hex = uuid.substr(0, 8) + uuid.substr(9, 4);
    EXPECT_EQ(std::stoll(millis_hex, nullptr, 16), now) << uuid;
    if (i % 10 == 0 && !previous.empty()) {
      EXPECT_LT(previous, uuid) << "a later millisecond";
    }
    previous = uuid;
    EXPECT_TRUE(seen.insert(uuid).second);
  }
}

}  // namespace
}  // namespace wallex
