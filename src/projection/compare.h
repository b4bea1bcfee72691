// Compares two read stores built from the same log by different routes — the in-process
// projectors' read.db and a consumer-group projector's store fed from Kafka (`wallex verify
// --compare-read-db`) — row by row, for the projections the second one holds. Reads only, each
// store in one snapshot; both are streamed in pages (memory does not grow with the stores).
//
// Equal means: the same read-model rows (by wallet id), the same ledger entries (by position,
// every field), the same per-wallet ledger totals, the same per-wallet event copies and their
// wallets. Rows present on one side only are differences.
#pragma once

#include <vector>

#include "projection/read_store.h"
#include "projection/verify.h"

namespace wallex {

struct CompareOptions {
  std::size_t page_rows = 5'000;
  std::size_t differences_shown = 50;
};

Result<VerifyReport, StoreError> compare_read_stores(ReadStore& reference, ReadStore& other,
                                                     const std::vector<ProjectorId>& projections,
                                                     const CompareOptions& options = {});

}  // namespace wallex
