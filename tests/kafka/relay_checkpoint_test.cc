#include <gtest/gtest.h>

#include <filesystem>

#include "store/sqlite/sqlite_relay_checkpoint.h"

namespace wallex {
namespace {

TEST(SqliteRelayCheckpointTest, StartsAtZeroNeverMovesBackAndSurvivesReopening) {
  std::string dir = (std::filesystem::temp_directory_path() / "wallex-relaycp-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  {
    auto checkpoint = SqliteRelayCheckpoint::open(dir);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.error().message;
    EXPECT_EQ(checkpoint.value()->load().value(), 0);
    ASSERT_TRUE(checkpoint.value()->save(42, 1'000).ok());
    ASSERT_TRUE(checkpoint.value()->save(17, 2'000).ok());  // lower: ignored
    EXPECT_EQ(checkpoint.value()->load().value(), 42);
    ASSERT_TRUE(checkpoint.value()->save(43, 3'000).ok());
  }
  auto reopened = SqliteRelayCheckpoint::open(dir);
  ASSERT_TRUE(reopened.ok());
  // One relay per data directory: a second one is refused while the first lives.
  auto second = SqliteRelayCheckpoint::open(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("already publishes"), std::string::npos)
      << second.error().message;
  EXPECT_EQ(reopened.value()->load().value(), 43);
  EXPECT_TRUE(std::filesystem::exists(SqliteRelayCheckpoint::path_in(dir)));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wallex
