// The embedded read side, on SQLite (this folder is the only user of sqlite3.h).
//
// SqliteReadStore: the ReadStore in <data_dir>/read.db, a file of its own so projection writes
// never take a lock the writer of wallex.db needs. WAL mode with synchronous=NORMAL: a commit is
// atomic (rows and checkpoint together) but may be lost on power failure; that is acceptable ONLY
// because everything in read.db is rebuildable from the log, and a lost commit rolls rows and
// checkpoint back together, so the projector simply applies those events again.
//
// SqliteEventLog: a read-only connection to <data_dir>/wallex.db (the log and the write model).
// It never writes, creates or migrates anything (SqliteStore::open would create a missing store
// and opens read-write), so it is safe against a live server and for `wallex verify`.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kafka/consumer_state_store.h"
#include "projection/event_log.h"
#include "projection/read_store.h"

namespace wallex {

// 2: ledger_entries.reference_hash (the reference index holds hashes). 3: the reference key
// follows the order of time-ordered transfer ids and of each wallet's versions. 4: the per-wallet
// event copy's documents may be NULL, read from the log beside read.db instead. 5: so may a ledger
// entry's metadata. 6: the reference key of a credit or debit puts the version before the
// wallet. Opened for writing, a read side of version 4 is moved to 5 in place (no row changes),
// and one of 5 to 6 (the keys recomputed); one of an older version is replaced by an empty one
// (it is rebuilt from the log).
inline constexpr int kReadSchemaVersion = 6;

// The key under which the reference index files a reference id (sqlite_read_store.cc).
std::int64_t reference_hash(std::string_view reference_id);

// Also the ConsumerStateStore of the consumer-group projectors: their tables (consumer_offsets,
// consumer_wallets, consumer_dead_letters) live in the same file as the rows they describe, so
// both are written in one transaction. They are created on a read-write open when missing.
class SqliteReadStore final : public ReadStore, public ConsumerStateStore {
 public:
  enum class Access { kReadWrite, kReadOnly };
  // kReadWrite creates read.db and its schema when missing, and moves or replaces an older
  // schema; kReadOnly fails when it is missing, and refuses an older schema (kSchemaTooOld).
  // Both refuse a newer one (kSchemaTooNew).
  static Result<std::unique_ptr<SqliteReadStore>, StoreError> open(const std::string& data_dir,
                                                                   Access access);
  // The same on a file of any name (a Kafka-built read store: `wallex project --read-db`).
  static Result<std::unique_ptr<SqliteReadStore>, StoreError> open_file(const std::string& path,
                                                                        Access access);
  static std::string path_in(const std::string& data_dir);
  ~SqliteReadStore() override;

  Status<StoreError> begin_write() override;
  Status<StoreError> commit() override;
  void rollback() override;
  // Writes the rows the open write holds back: its entries and event rows (with
  // group_live_rows), then its key rows, sorted.
  Status<StoreError> flush_writes() override;
  // On: the live ledger entries and wallet event rows of a write wait for flush_writes() or
  // commit() and go kRowsPerInsert to a statement (at most kHeldRowsMax wait; more are written
  // at once). For a caller that flushes after each projector, as ProjectionRunner does, so a
  // failing row is still its projector's. Off (the default): each row is inserted when it is
  // handed over, as a consumer-group projector needs to dead-letter the message whose row failed.
  void group_live_rows(bool on);
  static constexpr std::size_t kRowsPerInsert = 16;
  static constexpr std::size_t kHeldRowsMax = 4096;
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

  Result<std::vector<PartitionOffset>, StoreError> consumer_offsets(
      std::string_view group, std::string_view topic) override;
  Status<StoreError> set_consumer_offset(std::string_view group, std::string_view topic,
                                         const PartitionOffset& offset) override;
  Result<std::optional<std::int64_t>, StoreError> consumer_wallet_version(
      std::string_view group, std::string_view wallet_id) override;
  Status<StoreError> set_consumer_wallet_version(std::string_view group, std::string_view wallet_id,
                                                 std::int64_t version) override;
  Status<StoreError> add_dead_letter(std::string_view group,
                                     const DeadLetterRecord& letter) override;
  Result<std::int64_t, StoreError> dead_letter_count(std::string_view group) override;
  Result<std::vector<std::string>, StoreError> consumer_groups() override;

  struct Impl;

 private:
  explicit SqliteReadStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The embedded store's log on a read-only connection of its own.
//
// The writer commits batches before they are durable (SqliteStore is pipelined) and this
// connection sees them at once, so nothing read here may be handed on before it is durable:
//  - in the serving process, `durable_head` (the service's last durable position) bounds every
//    read: read_events() and last_position() never go past it;
//  - without it (a relay, rebuild or verify in a process of its own), every read takes its
//    snapshot first and then fdatasyncs the WAL, so whatever the snapshot holds is durable
//    (begin_snapshot() does it once for the whole snapshot). last_position() is then the
//    committed head, which may be ahead of the durable one for an instant.
class SqliteEventLog final : public EventLog {
 public:
  // Fails (kIo) when <data_dir>/wallex.db does not exist, kCorrupt when it is not a Wallex
  // store, kSchemaTooNew when a newer Wallex wrote it.
  static Result<std::unique_ptr<SqliteEventLog>, StoreError> open(
      const std::string& data_dir, const std::atomic<std::int64_t>* durable_head = nullptr);
  ~SqliteEventLog() override;

  Result<std::vector<LoggedEvent>, StoreError> read_events(std::int64_t after_position,
                                                           std::size_t limit) override;
  Status<StoreError> read_events_into(std::int64_t after_position, std::size_t limit,
                                      std::vector<LoggedEvent>& events) override;
  Result<std::int64_t, StoreError> last_position() override;
  Result<std::vector<WalletState>, StoreError> load_wallets() override;
  Status<StoreError> begin_snapshot() override;
  void end_snapshot() override;

  struct Impl;

 private:
  explicit SqliteEventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
