// The store test suite, written once against EventStore. Each store implementation provides a
// StoreHarness and instantiates the suite:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, StoreSuite, ::testing::Values(StoreFactory{"sqlite", ...}));
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace wallex::testing {

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
