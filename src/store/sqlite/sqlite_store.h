// SqliteStore: the embedded EventStore, one SQLite database file in WAL mode. Pipelined: write()
// commits a batch to the WAL without syncing it (synchronous=NORMAL), sync() fdatasyncs the WAL
// (on another thread while the writer goes on); commit() is both, so a returned commit has been
// fsync'd. The only file that includes sqlite3.h.
//
// Layout: <data_dir>/wallex.db: the log (events), the idempotency records, and the write model's
// snapshot (wallets, as of write_model.position). The schema version lives in PRAGMA
// user_version; a file written by a newer schema is refused (StoreErrorKind::kSchemaTooNew), a
// file that is not a Wallex store is refused (kCorrupt).
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace wallex {

// 2: the write_model table (the wallets table became a snapshot; a file of version 1 is migrated
// at open). 3: idempotency records may keep a reply in its compact form (service/reply_encoding.h),
// which a wallex of version 2 would answer as it is: no data changes, a file of version 2 is
// moved to 3 at open, so that older binaries refuse it. 4: the records in the order they were
// written, found through a lazily written index of key hashes (idempotency_records.h), instead of
// a table keyed by the key; a file of version 3 is migrated at open. 5: the write model's
// snapshot is written in slices, and the table snapshot_under_way names the position whose state
// the rows of one under way hold, which may be ahead of write_model.position (an older wallex
// would refuse such rows as damage); a file of version 4 gets the (empty) table at open.
inline constexpr int kSqliteSchemaVersion = 5;

class SqliteStore final : public EventStore {
 public:
  struct OpenOptions {
    // PRAGMA quick_check before anything is read: a damaged file (truncated, overwritten pages)
    // is refused with kCorrupt instead of served. Reads every page once (about 0.1 s per 100k
    // events here, see docs/crash-safety.md).
    bool check_integrity = true;
    // The write model's snapshot (the wallets table, write_model.h) begins with the commit that
    // ends snapshot_events_max or more events after the last snapshot, or that would leave more
    // than snapshot_wallets_max wallets changed since it, and is written a slice of rows per
    // commit from then on (at least snapshot_slice_rows, and twice the commit's wallets). The
    // wallets changed since the last whole snapshot are kept in memory, and replayed from the log
    // at open (at most about snapshot_events_max events, or those of snapshot_wallets_max wallets
    // and of the slices' commits). 1 and 0 write one with every commit, whole when it has no more
    // than snapshot_slice_rows wallets or twice the commit's.
    std::int64_t snapshot_events_max = 65'536;
    std::size_t snapshot_wallets_max = 16'384;
    std::size_t snapshot_slice_rows = 64;
    // Write the snapshot when the store closes in good order (false: the next open replays the
    // log after the last snapshot, as after a crash; for tests of that replay).
    bool snapshot_at_close = true;
    // Idempotency records gathered before they are merged into the index, and the fewest index
    // entries written per commit while a merge goes on (idempotency_records.h; small for tests).
    std::size_t idempotency_merge_records = 65'536;
    std::size_t idempotency_merge_chunk = 64;
    // The Bloom filter that answers lookups of new keys without reading the index: 2^bits_log2
    // bits (16 MiB; twice that while it is rebuilt), and the fewest index entries its rebuild
    // reads per commit (idempotency_records.h).
    unsigned idempotency_filter_bits_log2 = 27;
    std::size_t idempotency_filter_chunk = 256;
  };
  // Creates the directory and a new store when wallex.db does not exist (written under another
  // name and renamed into place). An existing wallex.db must be a complete Wallex store: an empty,
  // truncated, damaged or foreign file is refused (kCorrupt), never re-initialized.
  // After an I/O failure (kIo from any call) the store accepts no more writes and closes without
  // a checkpoint: it never retries a failed write or fsync.
  static Result<std::unique_ptr<SqliteStore>, StoreError> open(const std::string& data_dir,
                                                               OpenOptions options);
  static Result<std::unique_ptr<SqliteStore>, StoreError> open(const std::string& data_dir) {
    return open(data_dir, OpenOptions{});
  }
  // PRAGMA quick_check of <data_dir>/wallex.db on a read-only connection (for `wallex verify`,
  // also beside a running server): kCorrupt naming the damage, kIo when it cannot be read.
  static Status<StoreError> check_integrity(const std::string& data_dir);
  ~SqliteStore() override;

  Result<std::vector<WalletState>, StoreError> load_wallets() override;
  Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) override;
  // This process owns the file alone (one writer): never shared.
  bool shared() const override { return false; }
  Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) override;
  Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) override;
  Result<CommitResult, StoreError> commit(const CommitBatch& batch) override;
  bool pipelined() const override { return true; }
  Result<CommitResult, StoreError> write(const CommitBatch& batch) override;
  Status<StoreError> sync() override;
  Result<std::int64_t, StoreError> purge_idempotency(TimestampMs created_before_ms,
                                                     std::size_t limit) override;
  Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  Result<std::int64_t, StoreError> last_position() override;

  // For tests and measurements: lookups of a key that read the idempotency index, and rebuilds
  // of its filter completed, since open.
  std::int64_t idempotency_index_reads() const;
  std::int64_t idempotency_filter_rebuilds() const;

  struct Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
