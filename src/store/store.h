// EventStore: the write side's durable state behind one interface, so the embedded SQLite store
// and the PostgreSQL store are interchangeable and share one test suite (tests/store/).
//
// What it holds: the event log (global position, per-wallet contiguous versions), the write
// model (current state of every wallet) and idempotency records. A commit writes all three in
// one database transaction and returns only once that transaction is durable (fsync'd); a
// pipelined store also offers write() and sync() to overlap one batch's fsync with the next.
//
// Thread safety: none, but for sync() (see write()). A store has one owner, the service's writer
// thread; read-only tools (verify, tests) open their own instance.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "domain/wallet.h"

namespace wallex {

enum class StoreErrorKind {
  kIo,            // a read, write or fsync failed: the process must stop (never retry an fsync)
  kFull,          // the disk is full: this transaction was rolled back, nothing is lost
  kConflict,      // a uniqueness guard fired (e.g. a wallet version already exists)
  kCorrupt,       // the store's files are damaged or are not a Wallex store
  kSchemaTooNew,  // written by a newer Wallex: refuse rather than misread it
  kSchemaTooOld,  // written by an older Wallex, and opened where it may not be moved (read-only)
  kOther,
};

struct StoreError {
  StoreErrorKind kind = StoreErrorKind::kOther;
  std::string message;
};

struct EventMetadata {
  std::string correlation_id;
  std::optional<std::string> causation_id;  // the idempotency key of the request, if any
  bool operator==(const EventMetadata&) const = default;
};

struct StoredEvent {
  std::int64_t position = 0;  // global, starts at 1, strictly increasing in commit order
  Event event;
  EventMetadata metadata;
  bool operator==(const StoredEvent&) const = default;
};

// An event with its stored documents, as the log holds them: the read side copies them verbatim
// (the ledger's metadata, the per-wallet event copy) instead of encoding them again.
struct LoggedEvent : StoredEvent {
  std::string data_json;
  std::string metadata_json;
  // Set by whoever hands events to projectors (a rebuild's reader, the ProjectionRunner): a
  // dense number of the event's wallet, the same for all its events while that numbering lasts
  // (projectors then keep their states in arrays instead of hash maps). -1 otherwise (as read
  // from a log or a feed).
  std::int64_t wallet_slot = -1;
  bool operator==(const LoggedEvent&) const = default;
};

struct IdempotencyRecord {
  std::string key;
  std::string fingerprint;  // canonical text of the request (see service/reply_encoding.h)
  int status = 0;
  std::string body;
  std::int64_t position = 0;  // position of the request's last event; 0 when it wrote none
  TimestampMs created_at_ms = 0;
  bool operator==(const IdempotencyRecord&) const = default;
};

// The write-model change of one wallet: its state after the batch, and the version the batch
// was decided against (-1 for a wallet the batch creates). The store refuses the whole batch
// (kConflict) when the stored row is not at expected_version or the batch's events of that wallet
// do not run from expected_version + 1 to state.version.
struct WalletWrite {
  WalletState state;
  std::int64_t expected_version = -1;
};

// Everything one group commit writes. Entries are in decision order; each is one request.
struct CommitBatch {
  struct Entry {
    std::vector<Event> events;
    EventMetadata metadata;
    std::optional<IdempotencyRecord> idempotency;  // its `position` is filled in by the store
    // When the writer found an expired record of the same key (not purged yet), its
    // created_at_ms: the new record replaces exactly that one. A shared store refuses the batch
    // (kConflict) when the stored record is any other (another instance wrote the key since);
    // without it, an existing record of the key is a conflict there. A store owned by one
    // writer simply replaces the record.
    std::optional<TimestampMs> replaces_record_created_at_ms;
  };
  std::vector<Entry> entries;
  std::vector<WalletWrite> wallets;  // every wallet the batch touches, once
  // Asks for the documents the store wrote for each event (CommitResult::documents). A store
  // that has none to give (they are not text it encodes) may ignore it.
  bool keep_documents = false;
};

// The stored text of one event's data and metadata (LoggedEvent::data_json, metadata_json).
struct EventDocuments {
  std::string data_json;
  std::string metadata_json;
};

struct CommitResult {
  // For each entry, the position of its last event (0 if it had none).
  std::vector<std::int64_t> entry_positions;
  std::int64_t last_position = 0;
  // With CommitBatch::keep_documents, from a store that keeps them: the documents of every event
  // of the batch, in position order. Empty otherwise.
  std::vector<EventDocuments> documents;
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  virtual Result<std::vector<WalletState>, StoreError> load_wallets() = 0;
  // The stored state of the given wallets, read in one query; wallets that do not exist are
  // absent from the result, and its order is unspecified.
  virtual Result<std::vector<WalletState>, StoreError> read_wallets(
      const std::vector<std::string>& ids) = 0;
  // True when other processes may commit to the same store at the same time (PostgreSQL shared
  // by several `wallex serve` instances). The writer then refreshes the wallets it decides on
  // from the store before each batch, and treats kConflict as contention to retry, not a fault.
  // False for a store this process owns alone (SQLite): in-memory state is then authoritative.
  virtual bool shared() const = 0;
  virtual Result<std::optional<IdempotencyRecord>, StoreError> find_idempotency(
      std::string_view key) = 0;
  // The records of many keys at once (one read transaction): result[i] belongs to keys[i].
  virtual Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> find_idempotency_many(
      const std::vector<std::string>& keys) = 0;
  // Writes the batch in one transaction and makes it durable; all or nothing.
  virtual Result<CommitResult, StoreError> commit(const CommitBatch& batch) = 0;

  // Pipelined group commit, for a store that can separate writing a batch from making it
  // durable (the embedded store): write() commits the batch like commit() but may return before
  // it is durable; sync() makes everything written so far durable. The owner's writer thread
  // calls write() for one batch and decides the next while another thread runs sync() for the
  // previous ones (sync() is the one call that may run concurrently with the owner's). A batch
  // is durable, and may be acknowledged, once a sync() that began after its write() returned has
  // succeeded. Until then it must not be shown to anyone: other readers of the store may already
  // see it (SqliteEventLog bounds them). A failed sync() is fatal (kIo) and never retried.
  virtual bool pipelined() const { return false; }
  virtual Result<CommitResult, StoreError> write(const CommitBatch& batch) { return commit(batch); }
  virtual Status<StoreError> sync() { return Ok{}; }
  // Deletes up to `limit` idempotency records created before `created_before_ms`.
  virtual Result<std::int64_t, StoreError> purge_idempotency(TimestampMs created_before_ms,
                                                             std::size_t limit) = 0;
  // Events with position > after_position, in position order, at most `limit`.
  virtual Result<std::vector<StoredEvent>, StoreError> read_events(std::int64_t after_position,
                                                                   std::size_t limit) = 0;
  virtual Result<std::int64_t, StoreError> last_position() = 0;
};

}  // namespace wallex
