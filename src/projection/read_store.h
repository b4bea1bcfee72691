// ReadStore: the read side's storage (read.db on the embedded store), behind an interface so the
// projection logic has no third-party dependency and tests can fake it.
//
// Contract:
//  - Writes happen only inside begin_write() ... commit(); a projector's writes and its
//    checkpoint are written in the same transaction, so after any crash an event is either
//    applied with its checkpoint or not at all (exactly once). A store may buffer writes until
//    flush_writes() or commit(); the runner flushes after each projector, so a failing write is
//    charged to the projector that made it (the runner then rolls the whole batch back and
//    applies it again without that projector).
//  - Reads outside a write see committed data; begin_read() ... end_read() pins one snapshot.
//  - Rebuild: begin_rebuild() directs every read and write to fresh, empty tables;
//    finish_rebuild() indexes them and swaps them in place of the live tables, with the given
//    checkpoints, in one transaction. Until then the live tables are untouched.
//
// Thread safety: none. Each thread opens its own connection (the projector thread one, the query
// thread another).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "projection/rows.h"
#include "store/store.h"

namespace wallex {

// A slice of the ledger, newest first (createdAt descending, then position descending).
struct EntryFilter {
  std::optional<std::string> wallet_id;
  std::optional<EntryType> type;
  std::optional<TimestampMs> start_ms;  // inclusive
  std::optional<TimestampMs> end_ms;    // inclusive
  std::size_t limit = 50;
  std::size_t offset = 0;
};

class ReadStore {
 public:
  virtual ~ReadStore() = default;

  // --- transactions
  virtual Status<StoreError> begin_write() = 0;
  virtual Status<StoreError> commit() = 0;
  virtual void rollback() = 0;
  virtual Status<StoreError> flush_writes() = 0;  // sends buffered writes (inside a write)
  virtual Status<StoreError> begin_read() = 0;
  virtual void end_read() = 0;

  // --- checkpoints
  virtual Result<std::vector<Checkpoint>, StoreError> checkpoints() = 0;  // missing = position 0
  virtual Status<StoreError> set_checkpoint(const Checkpoint& checkpoint) = 0;

  // --- read model (GET /wallets)
  virtual Result<std::optional<WalletState>, StoreError> read_wallet(std::string_view id) = 0;
  virtual Status<StoreError> put_read_wallet(const WalletState& wallet) = 0;
  // Ordered by id, ids > after_id (all when empty), optionally of one owner.
  virtual Result<std::vector<WalletState>, StoreError> list_read_wallets(
      std::string_view after_id, const std::optional<std::string>& owner_id, std::size_t limit) = 0;

  // --- ledger
  virtual Result<std::optional<LedgerWallet>, StoreError> ledger_wallet(std::string_view id) = 0;
  virtual Status<StoreError> put_ledger_wallet(const LedgerWallet& wallet) = 0;
  virtual Result<std::vector<LedgerWallet>, StoreError> scan_ledger_wallets(
      std::string_view after_id, std::size_t limit) = 0;  // ordered by id
  virtual Status<StoreError> insert_entry(const LedgerEntry& entry) = 0;
  virtual Result<std::vector<LedgerEntry>, StoreError> find_entries(const EntryFilter& filter) = 0;
  virtual Result<std::vector<LedgerEntry>, StoreError> entries_by_reference(
      std::string_view reference_id, std::size_t limit) = 0;  // newest first
  virtual Result<std::vector<LedgerEntry>, StoreError> scan_entries(std::int64_t after_position,
                                                                    std::size_t limit) = 0;

  // --- wallet events (the per-wallet copy of the log)
  virtual Result<std::optional<EventWallet>, StoreError> event_wallet(std::string_view id) = 0;
  virtual Status<StoreError> put_event_wallet(const EventWallet& wallet) = 0;
  virtual Result<std::vector<EventWallet>, StoreError> scan_event_wallets(
      std::string_view after_id, std::size_t limit) = 0;  // ordered by id
  virtual Status<StoreError> insert_wallet_event(const WalletEventRow& row) = 0;
  // Versions >= from_version, ascending.
  virtual Result<std::vector<WalletEventRow>, StoreError> wallet_events(std::string_view wallet_id,
                                                                        std::int64_t from_version,
                                                                        std::size_t limit) = 0;
  // The event of highest version whose occurredAt <= at_ms.
  virtual Result<std::optional<WalletEventRow>, StoreError> wallet_event_at(
      std::string_view wallet_id, TimestampMs at_ms) = 0;
  virtual Result<std::vector<WalletEventRow>, StoreError> scan_wallet_events(
      std::int64_t after_position, std::size_t limit) = 0;  // ordered by position

  // Inconsistencies between rows and whatever index structures the store keeps for them
  // (verify); at most `limit` descriptions.
  virtual Result<std::vector<std::string>, StoreError> index_problems(std::size_t limit) = 0;

  // --- rebuild
  virtual Status<StoreError> begin_rebuild() = 0;
  virtual Status<StoreError> finish_rebuild(const std::vector<Checkpoint>& checkpoints) = 0;
};

}  // namespace wallex
