// The three projectors of the read side:
//
//  - ReadModelProjector: the current state of every wallet (GET /wallets), table read_wallets.
//  - LedgerProjector: one entry per money event (the /ledger endpoints), with the wallet's
//    balance before and after it replayed from the log, plus per-wallet totals.
//  - WalletEventsProjector: a per-wallet copy of the log with the balance after each event
//    (GET /wallets/{id}/events and time travel); the write store has no per-wallet index. Its
//    per-wallet state (last version and balance) is in a table of its own.
//
// Event to entry mapping (ledger):
//   WalletCreated            -> no entry (the wallet starts at 0)
//   WalletCredited           -> CREDIT,       reference "<walletId>:<version>"
//   WalletDebited            -> DEBIT,        reference "<walletId>:<version>"
//   WalletTransferInitiated  -> TRANSFER_OUT, reference transferId, related = toWalletId
//   WalletTransferCompleted  -> TRANSFER_IN,  reference transferId, related = fromWalletId
// An initial balance is the WalletCredited "Initial balance" at version 1: one CREDIT.
#pragma once

#include <memory>

#include "projection/projector.h"

namespace wallex {

// The entry an event produces given the wallet's key and balance before it (nullopt for
// WalletCreated). `after` must be the replayed balance after the event.
std::optional<LedgerEntry> entry_for_event(const LoggedEvent& stored, std::int64_t wallet_key,
                                           Money before, Money after);
// The same into an existing entry (its strings' buffers are reused); false for WalletCreated.
bool fill_entry(const LoggedEvent& stored, std::int64_t wallet_key, Money before, Money after,
                LedgerEntry& entry);

class ReadModelProjector final : public Projector {
 public:
  explicit ReadModelProjector(ProjectorOptions options = {}) : options_(options) {}
  ProjectorId id() const override { return ProjectorId::kReadModel; }
  Status<StoreError> apply(const LoggedEvent& event, ReadStore& store) override;
  Status<StoreError> flush(ReadStore& store) override;
  void reset() override { cache_.clear(); }

 private:
  ProjectorOptions options_;
  StateCache<WalletState> cache_;
};

class LedgerProjector final : public Projector {
 public:
  explicit LedgerProjector(ProjectorOptions options = {}) : options_(options) {}
  ProjectorId id() const override { return ProjectorId::kLedger; }
  Status<StoreError> apply(const LoggedEvent& event, ReadStore& store) override;
  Status<StoreError> flush(ReadStore& store) override;
  void reset() override { cache_.clear(); }

 private:
  ProjectorOptions options_;
  StateCache<LedgerWallet> cache_;
  LedgerEntry entry_;  // reused: one set of string buffers for every entry
};

class WalletEventsProjector final : public Projector {
 public:
  explicit WalletEventsProjector(ProjectorOptions options = {}) : options_(options) {}
  ProjectorId id() const override { return ProjectorId::kWalletEvents; }
  Status<StoreError> apply(const LoggedEvent& event, ReadStore& store) override;
  Status<StoreError> flush(ReadStore& store) override;
  void reset() override { cache_.clear(); }

 private:
  ProjectorOptions options_;
  StateCache<EventWallet> cache_;
  WalletEventRow row_;  // reused: one set of string buffers for every row
};

// One projector of each kind, in ProjectorId order.
std::vector<std::unique_ptr<Projector>> make_projectors(ProjectorOptions options = {});

}  // namespace wallex
