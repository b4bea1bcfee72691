// PgStore: the EventStore on PostgreSQL, shared by several `wallex serve` instances.
//
// Schema and its versions: pg_migrations.h (migration 1). A store opens only a database whose
// schema is exactly the version this binary knows: pending migrations are refused with a message
// naming `wallex migrate up`, a newer schema with kSchemaTooNew. It also refuses a server
// running with fsync=off (a 2xx means durable), turns synchronous_commit on for its session if
// the server default turned it off, and sets lock_timeout = 0 (waiting for another instance's
// commit is contention, not a failure).
//
// Commit: one round trip, `SELECT wallex_commit(...)` in autocommit, with every column of the
// batch passed as one array per column. Inside (see pg_migrations.cc): wallet rows are
// compare-and-set on their expected versions, new wallets and idempotency records inserted, and
// only then positions allocated from the single-row log_head, whose row lock is held until the
// commit ends. Allocation therefore happens in commit order, one transaction at a time: at any
// moment the committed events hold exactly positions 1..head, with no gap and never a later
// position visible before an earlier one. A reader can tail the log with `position > checkpoint`.
//
// Conflicts (another instance changed a wallet, created it, or wrote the same idempotency key;
// serialization failures and deadlocks) are kConflict: nothing was written, the batch may be
// decided again. A lost connection is kIo (a commit's outcome is then unknown).
//
// Thread safety: none (one connection); each writer, reader or test opens its own store.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace wallex {

class PgConnection;

class PgStore final : public EventStore {
 public:
  static Result<std::unique_ptr<PgStore>, StoreError> open(const std::string& url);
  ~PgStore() override;

  Result<std::vector<WalletState>, StoreError> load_wallets() override;
  Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) override;
  bool shared() const override { return true; }
  Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) override;
  Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) override;
  Result<CommitResult, StoreError> commit(const CommitBatch& batch) override;
  Result<std::int64_t, StoreError> purge_idempotency(TimestampMs created_before_ms,
                                                     std::size_t limit) override;
  Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  // log_head: the position of the last committed event (0 for an empty log).
  Result<std::int64_t, StoreError> last_position() override;

 private:
  explicit PgStore(std::unique_ptr<PgConnection> connection);
  std::unique_ptr<PgConnection> connection_;
};

}  // namespace wallex
