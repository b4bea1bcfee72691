// WalletService: the write side. One writer thread owns every decision and every commit:
//
//   submit() ─▶ bounded queue ─▶ writer: take up to batch_commands_max commands, decide each
//   against in-memory state (plus the batch's own earlier decisions), write all their events,
//   write-model rows and idempotency records in ONE store transaction (one fsync), then publish
//   the new state and answer every command of the batch.
//
// Pipelined (a store with EventStore::pipelined(), the embedded one, and a writer thread): the
// writer writes a batch without waiting for its fsync and hands it to the syncer thread
// (wallex-sync), which fsyncs everything written so far, then publishes and answers the batches
// that fsync covered, in order. Meanwhile the writer decides the next batch against the state of
// the batches still waiting (a wallet's unsynced state, a key of an unsynced batch: in flight).
// At most sync_batches_max batches wait; the writer then waits too. While the syncer is busy, the
// writer lets commands gather until sync_gather_commands are queued: whatever it wrote then
// would wait for the syncer's next fsync anyway, and one commit of many commands costs far less
// per command than many commits of one (a commit writes whole pages, and each wakes the syncer).
// When the syncer is idle, the writer writes what is queued at once.
//
// Guarantees:
//  - a reply is delivered only after the commit that holds its effect is durable, and nothing
//    shows a batch before that (find_wallet, on_commit, health's last_position);
//  - a failed commit fails exactly the commands of its batch (503) and leaves in-memory state
//    equal to the store; an I/O failure is fatal: the service stops accepting work and calls
//    on_fatal, it never retries an fsync;
//  - idempotency: a key is checked against the batch (in flight → 409) and the store (same
//    request → stored reply, replayed; different request → 409); the record is written in the
//    same transaction as the request's events, business rejections included;
//  - a full queue answers 503 (OVERLOADED) at once instead of growing;
//  - on a shared store (several instances on one PostgreSQL database) each attempt first reads
//    the stored state of the wallets it touches, and a conflicting commit (another instance
//    changed a wallet or wrote the same idempotency key) is decided again on fresh state,
//    splitting the batch after repeated conflicts; a conflict is never a client's failure, and
//    only a single command that conflicts single_command_attempts_max times gets a 503. A key
//    another instance committed meanwhile is found on the retry and replayed (or 409 when the
//    request differs). Without a shared store, nothing of this runs.
//
// Thread safety: submit(), find_wallet() and health() may be called from any thread. Reply
// callbacks run on the writer thread and must not block (post the work elsewhere).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>

#include "common/clock.h"
#include "common/id_generator.h"
#include "domain/wallet.h"
#include "store/store.h"

namespace wallex {

struct ServiceOptions {
  std::size_t queue_length_max = 100'000;  // commands waiting for the writer
  std::size_t batch_commands_max = 4'096;  // commands decided and committed together
  TimestampMs idempotency_retention_ms = 24LL * 3600 * 1000;
  TimestampMs purge_interval_ms = 60'000;
  std::size_t purge_batch_max = 10'000;  // records deleted per purge transaction
  // Batches written and waiting for their fsync (pipelined stores only).
  std::size_t sync_batches_max = 16;
  // Pipelined stores only: while the syncer is busy, commands queued before the writer takes
  // them (at once when the syncer is idle). 1: every command written as soon as it is taken.
  std::size_t sync_gather_commands = 64;
  // Called once, on the writer or the syncer thread, when the store fails in a way that forbids
  // going on.
  std::function<void(const StoreError&)> on_fatal;
  // Called after every durable commit with the new last log position, before the batch's
  // replies are sent (projectors wake on it), on the writer thread (on the syncer thread when
  // pipelined), in commit order. Must not block.
  std::function<void(std::int64_t last_position)> on_commit;
  // When set: called with the events of every durable commit, in position order, just before its
  // on_commit, on the same thread and in the same order (an in-memory feed for the projector,
  // projection/event_feed.h). Only with a store that returns its documents
  // (CommitBatch::keep_documents); must not block.
  std::function<void(std::vector<LoggedEvent>&& events)> on_durable_events;
  // false: no writer thread; the owner calls drive_once() (deterministic simulation and tests).
  bool run_writer_thread = true;
  // A shared store (EventStore::shared(), several instances on PostgreSQL): attempts of one
  // batch size that may conflict before the batch is split in halves, and attempts of a single
  // command that may conflict in a row before it is answered 503.
  std::size_t conflict_attempts_per_size = 2;
  std::size_t single_command_attempts_max = 32;
};

struct CommandRequest {
  Command command;
  std::optional<std::string> idempotency_key;
  std::string correlation_id;
};

struct Reply {
  int status = 0;
  std::string body;
  std::int64_t position = 0;  // log position of the command's last event; 0 if none
  bool replayed = false;
};

using ReplyCallback = std::function<void(Reply&&)>;

struct ServiceHealth {
  bool accepting = false;
  bool store_failed = false;
  std::size_t queue_length = 0;
  std::size_t wallet_count = 0;
  std::int64_t last_position = 0;
  std::uint64_t commits = 0;
  std::uint64_t commands = 0;
  std::uint64_t conflicts = 0;  // commit attempts another instance's changes made fail (retried)
  std::uint64_t unsynced_batches = 0;  // pipelined: written, not yet made durable by the syncer
};

class WalletService {
 public:
  WalletService(EventStore& store, const Clock& clock, IdGenerator& ids, ServiceOptions options);
  ~WalletService();
  WalletService(const WalletService&) = delete;
  WalletService& operator=(const WalletService&) = delete;

  // Loads every wallet from the store's write model and starts the writer thread.
  Status<StoreError> start();
  // Queues a command; `done` is called exactly once with its reply.
  void submit(CommandRequest request, ReplyCallback done);
  // The state after the last acknowledged commit of this instance (read-your-writes for every
  // reply this instance sent). On a shared store it may lag another instance's commits: use
  // read_wallet() there.
  std::optional<WalletState> find_wallet(std::string_view id) const;
  // GET /wallets/{id}: `done` gets 200 with the wallet snapshot, 404 WALLET_NOT_FOUND, or 503.
  // Without a shared store it is answered at once, on the calling thread, from find_wallet().
  // On a shared store the read is queued to the writer, which reads the wallets of all queued
  // reads from the store in one query (and publishes what it read): the answer reflects every
  // commit acknowledged by any instance before the read was queued. Queued reads count towards
  // queue_length_max.
  void read_wallet(std::string id, ReplyCallback done);
  // True when reads must go through the store (EventStore::shared()).
  bool shared_store() const { return store_.shared(); }
  ServiceHealth health() const;
  // Stops accepting commands, decides and commits everything already queued, joins the writer.
  void stop();

  // Without a writer thread (run_writer_thread = false): decides and commits everything queued
  // as one batch on the calling thread, replies included, then runs a due purge. Returns the
  // number of commands processed.
  std::size_t drive_once();

 private:
  struct Pending {
    CommandRequest request;
    ReplyCallback done;
  };
  struct PendingRead {
    std::string wallet_id;
    ReplyCallback done;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using WalletMap = std::unordered_map<std::string, WalletState, StringHash, std::equal_to<>>;

  void run();
  // Under queue_mutex_: whether the writer has work it may take now (pipelined, with the syncer
  // busy, commands gather until sync_gather_commands are queued).
  bool writer_may_take() const;
  // Moves up to batch_commands_max queued commands into `batch`; false once stopped and drained.
  bool take_batch(std::deque<Pending>& batch, std::vector<PendingRead>& reads, bool wait);
  // Queues a command or a read through `push` (called under queue_mutex_), or answers `done` at
  // once when the service cannot take it (failed store, shutting down, full queue).
  template <typename Push>
  void enqueue(ReplyCallback& done, Push push);
  void process_batch(std::deque<Pending>& batch);
  // Answers queued reads of a shared store from one store query.
  void process_reads(std::vector<PendingRead>& reads);
  enum class AttemptOutcome {
    kDone,      // every command answered (committed, replayed or refused)
    kConflict,  // shared store only: another instance interfered, nothing written, nobody answered
    kFailed,    // the store failed: every command answered with the failure
  };
  // Decides `commands` on the current state (refreshed from the store first when shared) and
  // commits them in one transaction.
  AttemptOutcome attempt(std::span<Pending*> commands, bool shared);
  // Replaces the published state of every wallet `commands` touch with the stored one.
  Status<StoreError> refresh_wallets(std::span<Pending*> commands);
  // Makes a durable commit visible: its wallets (moved out of `wallets`), the log head, on_commit.
  void publish(std::vector<WalletState>& wallets, std::int64_t last_position);
  // The events of a written batch with the documents the store wrote, moved out of `commit` and
  // `result` (neither is used after the write); empty when the store kept no documents.
  static std::vector<LoggedEvent> logged_events(CommitBatch& commit, CommitResult& result);
  // Marks the store failed and calls on_fatal, once whichever thread comes first.
  void report_fatal(const StoreError& error);

  // Pipelined commits: one written batch on its way to durability.
  struct SyncTicket {
    struct Answer {
      ReplyCallback done;
      Reply reply;
      bool depends_on_commit = false;  // false: a refusal decided on the batches before it
    };
    std::uint64_t seq = 0;
    bool wrote = false;  // false: only answers decided on state that is not durable yet
    std::int64_t last_position = 0;
    std::vector<WalletState> wallets;  // published once durable
    std::vector<LoggedEvent> events;  // for on_durable_events, once durable
    std::vector<Answer> answers;
  };
  // Writer thread: forgets the unsynced state of batches the syncer has made durable.
  void forget_durable();
  // Writer thread: queues a ticket for the syncer, waiting while sync_batches_max wait.
  void queue_for_sync(SyncTicket ticket);
  void run_syncer();
  // Syncer thread: publishes whether it waits for batches (see syncer_idle_).
  void set_syncer_idle(bool idle);
  void purge_if_due();
  void purge_expired_keys(TimestampMs now_ms);

  EventStore& store_;
  const Clock& clock_;
  IdGenerator& ids_;
  const ServiceOptions options_;
  const bool pipelined_;  // store_.pipelined() with a writer thread: see the top of this file

  // The published state: every wallet as of the last durable commit. Written by the writer
  // thread (by the syncer when pipelined), under the lock.
  mutable std::shared_mutex wallets_mutex_;
  WalletMap wallets_;

  mutable std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::deque<Pending> queue_;
  std::vector<PendingRead> reads_;  // shared store only
  bool accepting_ = false;
  bool stopping_ = false;
  // Pipelined: the syncer waits for batches (no fsync under way). Under queue_mutex_, so that
  // the writer, waiting for commands to gather, is woken when it turns true.
  bool syncer_idle_ = true;

  std::thread writer_;
  std::atomic<bool> store_failed_{false};
  std::atomic<bool> fatal_reported_{false};

  // Pipelined commits. Writer thread only: the state of every wallet, and every key, that a
  // batch written but not yet durable holds, with the sequence number of the last such batch.
  std::unordered_map<std::string, std::pair<WalletState, std::uint64_t>, StringHash,
                     std::equal_to<>>
      unsynced_wallets_;
  std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>> unsynced_keys_;
  std::uint64_t forgotten_seq_ = 0;            // durable_seq_ as of the last forget_durable()
  std::atomic<std::uint64_t> written_seq_{0};  // written by the writer only
  // The last batch made durable, published and answered (stored by the syncer after it has
  // published the batch's wallets into wallets_).
  std::atomic<std::uint64_t> durable_seq_{0};
  std::mutex sync_mutex_;
  std::condition_variable sync_ready_;
  std::condition_variable sync_space_;
  std::deque<SyncTicket> sync_queue_;
  bool sync_stopping_ = false;
  std::thread syncer_;
  std::atomic<std::int64_t> last_position_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> commands_{0};
  std::atomic<std::uint64_t> conflicts_{0};
  std::uint64_t backoff_state_ = 0x9E3779B97F4A7C15ULL;  // writer thread only: retry jitter
  TimestampMs last_purge_ms_ = 0;
};

}  // namespace wallex
