// The store test suite, written once against EventStore. Each store implementation provides a
// StoreHarness and instantiates the suite:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreSuite, ::testing::Values(StoreFactory{"sqlite", ...}));
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace wallex::testing {

// Building blocks of the suite's batches (store_suite.cc), also for store-specific tests.
Money money(std::string_view text);
Event created(const std::string& id, TimestampMs at = 1000);
Event credited(const std::string& id, std::int64_t version, std::string_view amount,
               std::optional<std::string> description = std::nullopt);
// The state `credited` events lead to: owner "owner-of-<id>", created at 1000.
WalletState state(const std::string& id, std::string_view balance, std::int64_t version);
// A write-model change; `expected` is the version the batch was decided against (-1: new).
WalletWrite write(const std::string& id, std::string_view balance, std::int64_t version,
                  std::int64_t expected = -1);
CommitBatch::Entry entry(std::vector<Event> events, std::string correlation = "corr",
                         std::optional<std::string> key = std::nullopt);

// One fresh, empty store location. open() may be called again after the previous instance is
// destroyed, and must then see everything committed before.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  virtual std::unique_ptr<EventStore> open() = 0;
};

struct StoreFactory {
  std::string name;
  std::function<std::unique_ptr<StoreHarness>()> make;
};

class StoreSuite : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam().make();
    store_ = harness_->open();
    ASSERT_NE(store_, nullptr);
  }
  void reopen() {
    store_.reset();
    store_ = harness_->open();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<EventStore> store_;
};

}  // namespace wallex::testing
