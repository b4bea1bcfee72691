// The store suite against the in-memory store the simulation uses: the double honours the same
// contract as the real stores.
#include "memory_store.h"
#include "store_suite.h"

namespace wallex::testing {
namespace {

class MemoryHarness final : public StoreHarness {
 public:
  std::unique_ptr<EventStore> open() override {
    // Reopening sees everything committed before: hand out views of one shared store.
    return std::make_unique<SharedView>(store_);
  }

 private:
  class SharedView final : public EventStore {
   public:
    explicit SharedView(MemoryStore& store) : store_(store) {}
    Result<std::vector<WalletState>, StoreError> load_wallets() override { return store_.load_wallets(); }
    Result<std::vector<WalletState>, StoreError> read_wallets(const std::vector<std::string>& ids) override {
      return store_.read_wallets(ids);
    }
    bool shared() const override { return store_.shared(); }
    Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(std::string_view key) override {
      return store_.find_idempotency(key);
    }
    Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
        const std::vector<std::string>& keys) override {
      return store_.find_idempotency_many(keys);
    }
    Result<CommitResult, StoreError> commit(const CommitBatch& batch) override { return store_.commit(batch); }
    Result<std::int64_t, StoreError> purge_idempotency(TimestampMs before, std::size_t limit) override {
      return store_.purge_idempotency(before, limit);
    }
    Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after, std::size_t limit) override {
      return store_.read_events(after, limit);
    }
    Result<std::int64_t, StoreError> last_position() override { return store_.last_position(); }

   private:
    MemoryStore& store_;
  };
  MemoryStore store_;
};

INSTANTIATE_TEST_SUITE_P(Memory, StoreSuite,
                         ::testing::Values(StoreFactory{
                             "memory", [] { return std::make_unique<MemoryHarness>(); }}),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace wallex::testing
