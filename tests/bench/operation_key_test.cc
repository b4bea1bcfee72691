#include <gtest/gtest.h>

#include <set>
#include <string>

#include "bench/bench_run.h"

namespace wallex::bench {
namespace {

BenchOptions with_keys(KeyStyle style, std::string run_id = "run-1") {
  BenchOptions options;
  options.run_id = std::move(run_id);
  options.idempotency_keys = style;
  return options;
}

bool is_version4_uuid(const std::string& key) {
  if (key.size() != 36) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = key[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return key[14] == '4' && std::string("89ab").find(key[19]) != std::string::npos;
}

TEST(OperationKey, OrderedKeysCarryTheRunIdAndIndex) {
  EXPECT_EQ(operation_key(with_keys(KeyStyle::kOrdered), 0), "run-1-op-0");
  EXPECT_EQ(operation_key(with_keys(KeyStyle::kOrdered), 12345), "run-1-op-12345");
}

TEST(OperationKey, RandomKeysAreVersion4UuidsTheSameOnEveryCall) {
  const BenchOptions options = with_keys(KeyStyle::kRandom);
  for (std::uint64_t index : {0ULL, 1ULL, 99ULL, 1ULL << 40}) {
    const std::string key = operation_key(options, index);
    EXPECT_TRUE(is_version4_uuid(key)) << key;
    EXPECT_EQ(key, operation_key(options, index));
  }
}

TEST(OperationKey, RandomKeysDifferByIndexAndByRun) {
  std::set<std::string> keys;
  constexpr std::uint64_t kPerRun = 50'000;
  for (const char* run : {"run-1", "run-2"}) {
    const BenchOptions options = with_keys(KeyStyle::kRandom, run);
    for (std::uint64_t i = 0; i < kPerRun; ++i) keys.insert(operation_key(options, i));
  }
  EXPECT_EQ(keys.size(), 2 * kPerRun);
}

TEST(OperationKey, RandomKeysAreNotInIndexOrder) {
  // Ordered keys of consecutive operations sort next to each other; random ones must not, or
  // they would measure nothing the ordered ones do not.
  const BenchOptions options = with_keys(KeyStyle::kRandom);
  int ascending = 0;
  constexpr int kPairs = 1'000;
  for (int i = 0; i < kPairs; ++i) {
    if (operation_key(options, i) < operation_key(options, i + 1)) ++ascending;
  }
  EXPECT_GT(ascending, kPairs * 4 / 10);
  EXPECT_LT(ascending, kPairs * 6 / 10);
}

}  // namespace
}  // namespace wallex::bench
