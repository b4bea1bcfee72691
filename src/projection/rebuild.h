// Rebuild: recomputes every projection from event zero into fresh tables, then swaps them in
// place of the live ones in one transaction (readers see the old tables until that commit, the
// new ones after it; a crash before it leaves the old ones untouched).
//
// Fast by construction: a reader thread reads and decodes the log in large batches while the
// calling thread applies the previous ones (two cores, two stages); every wallet's state stays in
// memory (written once per wallet at the end, in id order), rows are appended in position order in
// transactions of hundreds of thousands of events, and the secondary indexes are built once, by
// sorting, during the swap.
//
// Meant to run while the server is stopped. If one is running, its projector resumes from the
// rebuilt checkpoints after the swap (it re-reads them in every transaction).
#pragma once

#include <cstdint>
#include <functional>

#include "projection/event_log.h"
#include "projection/read_store.h"

namespace wallex {

struct RebuildProgress {
  std::int64_t events = 0;         // applied so far
  std::int64_t last_position = 0;  // of the last event applied
  std::int64_t head = 0;           // the log's last position when the rebuild started
  std::int64_t elapsed_ms = 0;
};

struct RebuildOptions {
  std::size_t read_batch_events = 10'000;
  std::size_t read_ahead_batches = 4;  // decoded batches the reader thread may hold
  std::size_t transaction_events = 250'000;
  std::function<void(const RebuildProgress&)> on_progress;  // after every batch
};

struct RebuildSummary {
  std::int64_t events = 0;
  std::int64_t wallets = 0;
  std::int64_t last_position = 0;
  std::int64_t elapsed_ms = 0;  // total, swap included
  std::int64_t swap_ms = 0;     // of which indexing and swapping in the new tables
};

Result<RebuildSummary, StoreError> rebuild(EventLog& log, ReadStore& store, const Clock& clock,
                                           const RebuildOptions& options = {});

}  // namespace wallex
