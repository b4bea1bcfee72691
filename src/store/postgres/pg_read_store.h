// The read side on PostgreSQL (issue 7, part 2), shared by every `wallex serve` instance of one
// database. Tables: migration 2 (pg_migrations.cc); the rows are those of the embedded read.db.
//
// PgReadStore: the ReadStore on its own connection.
//  - Writes are buffered per table and sent as one multi-row statement per table (arrays
//    unnested server-side) at flush_writes() (after each projector's part of a batch), before
//    any read, at commit, or when kBufferedRowsMax rows are waiting: a batch of projected events
//    costs a few round trips, not one per row. A buffered row that fails surfaces at the
//    flush_writes() of the projector that wrote it, which the runner then leaves out of the
//    batch's next attempt.
//  - begin_write() locks projection_checkpoints in SHARE ROW EXCLUSIVE mode: projection
//    transactions of all instances run one at a time, and the checkpoints they read are the
//    latest committed ones (READ COMMITTED; the lock is taken before they are read). So even two
//    instances projecting at once (a lease handing over) cannot apply an event twice: the second
//    sees the first's checkpoint and resumes from it. The lease only saves the wasted work.
//  - begin_read() pins one snapshot: REPEATABLE READ, READ ONLY.
//  - Rebuild: begin_rebuild() creates fresh <table>_next tables (without their secondary indexes)
//    after taking a session advisory lock (one rebuild at a time); finish_rebuild() indexes them
//    and, in one transaction that first locks projection_checkpoints EXCLUSIVE (waiting for a
//    running projection transaction, blocking the next), drops the live tables, renames the new
//    ones and writes the checkpoints. Readers see the old tables or the new ones, never a mix.
//  - index_problems(): PostgreSQL maintains its indexes itself, transactionally; there are no
//    Wallex-maintained key rows to compare, so it reports nothing.
//  - A lost connection fails the call (kIo); the next begin_write()/begin_read(), or a read
//    outside a transaction, connects again.
//
// PgEventLog: the EventLog over the shared log (events, log_head, wallets), read only. Tailing by
// `position > checkpoint` is safe because committed positions are always the gap-free prefix
// 1..head (docs/postgresql.md).
//
// Thread safety: none; each thread opens its own.
#pragma once

#include <memory>
#include <string>

#include "projection/event_log.h"
#include "projection/read_store.h"

namespace wallex {

class PgReadStore final : public ReadStore {
 public:
  // Rows buffered across all tables before a flush is forced.
  static constexpr std::size_t kBufferedRowsMax = 4'096;
  // Fails unless the database is at this binary's schema version (run `wallex migrate up`).
  static Result<std::unique_ptr<PgReadStore>, StoreError> open(const std::string& url);
  ~PgReadStore() override;

  Status<StoreError> begin_write() override;
  Status<StoreError> commit() override;
  void rollback() override;
  Status<StoreError> flush_writes() override;
  Status<StoreError> begin_read() override;
  void end_read() override;

  Result<std::vector<Checkpoint>, StoreError> checkpoints() override;
  Status<StoreError> set_checkpoint(const Checkpoint& checkpoint) override;

  Result<std::optional<WalletState>, StoreError> read_wallet(std::string_view id) override;
  Status<StoreError> put_read_wallet(const WalletState& wallet) override;
  Result<std::vector<WalletState>, StoreError> list_read_wallets(
      std::string_view after_id, const std::optional<std::string>& owner_id,
      std::size_t limit) override;

  Result<std::optional<LedgerWallet>, StoreError> ledger_wallet(std::string_view id) override;
  Status<StoreError> put_ledger_wallet(const LedgerWallet& wallet) override;
  Result<std::vector<LedgerWallet>, StoreError> scan_ledger_wallets(std::string_view after_id,
                                                                    std::size_t limit) override;
  Status<StoreError> insert_entry(const LedgerEntry& entry) override;
  Result<std::vector<LedgerEntry>, StoreError> find_entries(const EntryFilter& filter) override;
  Result<std::vector<LedgerEntry>, StoreError> entries_by_reference(std::string_view reference_id,
                                                                    std::size_t limit) override;
  Result<std::vector<LedgerEntry>, StoreError> scan_entries(std::int64_t after_position,
                                                            std::size_t limit) override;

  Result<std::optional<EventWallet>, StoreError> event_wallet(std::string_view id) override;
  Status<StoreError> put_event_wallet(const EventWallet& wallet) override;
  Result<std::vector<EventWallet>, StoreError> scan_event_wallets(std::string_view after_id,
                                                                  std::size_t limit) override;
  Status<StoreError> insert_wallet_event(const WalletEventRow& row) override;
  Result<std::vector<WalletEventRow>, StoreError> wallet_events(std::string_view wallet_id,
                                                                std::int64_t from_version,
                                                                std::size_t limit) override;
  Result<std::optional<WalletEventRow>, StoreError> wallet_event_at(std::string_view wallet_id,
                                                                    TimestampMs at_ms) override;
  Result<std::vector<WalletEventRow>, StoreError> scan_wallet_events(std::int64_t after_position,
                                                                     std::size_t limit) override;

  Result<std::vector<std::string>, StoreError> index_problems(std::size_t limit) override;

  Status<StoreError> begin_rebuild() override;
  Status<StoreError> finish_rebuild(const std::vector<Checkpoint>& checkpoints) override;

  struct Impl;

 private:
  explicit PgReadStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class PgEventLog final : public EventLog {
 public:
  static Result<std::unique_ptr<PgEventLog>, StoreError> open(const std::string& url);
  ~PgEventLog() override;

  Result<std::vector<LoggedEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  Result<std::int64_t, StoreError> last_position() override;
  Result<std::vector<WalletState>, StoreError> load_wallets() override;
  Status<StoreError> begin_snapshot() override;
  void end_snapshot() override;

  struct Impl;

 private:
  explicit PgEventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
