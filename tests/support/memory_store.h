// MemoryStore: an EventStore held in memory, for the deterministic simulation. It honours the same
// contract as the SQLite store (the store suite runs against it too), and FaultyStore wraps any
// store to fail commits on demand, including the worst case of a commit that reached the disk
// but reported failure.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "store/store.h"

namespace wallex::testing {

class MemoryStore final : public EventStore {
 public:
  Result<std::vector<WalletState>, StoreError> load_wallets() override;
  Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) override;
  bool shared() const override { return false; }
  Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) override;
  Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) override;
  Result<CommitResult, StoreError> commit(const CommitBatch& batch) override;
  Result<std::int64_t, StoreError> purge_idempotency(TimestampMs created_before_ms,
                                                     std::size_t limit) override;
  Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  Result<std::int64_t, StoreError> last_position() override;

 private:
  std::vector<StoredEvent> events_;
  std::map<std::string, WalletState, std::less<>> wallets_;
  std::map<std::string, IdempotencyRecord, std::less<>> keys_;
};

// What happened to the last commit a FaultyStore was asked for.
enum class CommitOutcome {
  kNone,
  kCommitted,
  kFull,          // kFull reported, rolled back: nothing written
  kIoLost,        // kIo reported, nothing reached the disk
  kIoButWritten,  // kIo reported, yet the transaction is durable
};

class FaultyStore final : public EventStore {
 public:
  struct Odds {
    double full = 0;            // kFull: rolled back, nothing written
    double io_lost = 0;         // kIo: nothing reached the disk
    double io_but_written = 0;  // kIo reported, yet the transaction is durable
  };
  FaultyStore(EventStore& inner, std::uint64_t seed, Odds odds)
      : inner_(inner), random_(seed), odds_(odds) {}

  CommitOutcome last_outcome() const { return last_outcome_; }
  void forget_outcome() { last_outcome_ = CommitOutcome::kNone; }

  Result<std::vector<WalletState>, StoreError> load_wallets() override { return inner_.load_wallets(); }
  Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) override {
    return inner_.read_wallets(ids);
  }
  bool shared() const override { return inner_.shared(); }
  Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) override {
    return inner_.find_idempotency(key);
  }
  Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) override {
    return inner_.find_idempotency_many(keys);
  }
  Result<CommitResult, StoreError> commit(const CommitBatch& batch) override;
  Result<std::int64_t, StoreError> purge_idempotency(TimestampMs before, std::size_t limit) override {
    return inner_.purge_idempotency(before, limit);
  }
  Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after,
                                                           std::size_t limit) override {
    return inner_.read_events(after, limit);
  }
  Result<std::int64_t, StoreError> last_position() override { return inner_.last_position(); }

 private:
  EventStore& inner_;
  std::mt19937_64 random_;
  Odds odds_;
  CommitOutcome last_outcome_ = CommitOutcome::kNone;
};

}  // namespace wallex::testing
