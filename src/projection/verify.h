// Verify: replays the whole log with an independent fold and checks every invariant of the
// stored state, reading only (safe against a live server: the log and the read side are each
// read in one snapshot; the read side is taken first, so its checkpoints never exceed the log).
//
// Checked:
//  - the log: positions 1, 2, 3, … without gaps; every event decodes; per wallet, versions run
//    0, 1, 2, … from WalletCreated; no balance ever below 0 or above the limit; the two events of
//    every transfer are adjacent, name each other's wallets, share the transfer id and amount;
//  - money is conserved: sum of balances = credits − debits (transfers move money, never make it);
//  - the write model (wallets table of wallex.db) equals the replay at the log head;
//  - each projection equals the replay at its checkpoint: every read-model row, every ledger
//    entry (exactly one per money event, same id, amounts, balances before/after, reference,
//    related wallet, metadata, time), every ledger total, every row of the per-wallet event copy;
//    no row without its event. A projection behind the log is reported, not counted as a failure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "projection/event_log.h"
#include "projection/read_store.h"

namespace wallex {

struct VerifyReport {
  std::vector<std::string> summary;      // what was checked, one line each
  std::vector<std::string> differences;  // the first differences found (at most differences_shown)
  std::int64_t difference_count = 0;
  bool ok() const { return difference_count == 0; }
};

struct VerifyOptions {
  std::size_t batch_events = 20'000;
  std::size_t differences_shown = 50;
};

// `read_store` may be null when there is no read side (that is itself reported as a difference).
Result<VerifyReport, StoreError> verify(EventLog& log, ReadStore* read_store,
                                        const VerifyOptions& options = {});

}  // namespace wallex
