#include "service/wallet_service.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <type_traits>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/log.h"
#include "service/reply_encoding.h"

namespace wallex {
namespace {

Reply error_reply(ErrorCode code, std::string_view message) {
  return Reply{http_status(code), encode_error(code, message), 0, false};
}

bool is_fatal(const StoreError& error) {
  return error.kind == StoreErrorKind::kIo || error.kind == StoreErrorKind::kCorrupt;
}

// The reply to every command of a batch whose commit failed. What the client may conclude
// depends on the failure: after kFull (and conflicts, busy) SQLite rolled the transaction back,
// so the request has no effect; after an I/O failure (a failed write or fsync) its events may or
// may not be on disk, and only a retry with the same Idempotency-Key after the restart tells.
Reply failed_commit_reply(const StoreError& error) {
  switch (error.kind) {
    case StoreErrorKind::kFull:
      return error_reply(ErrorCode::kStoreFull,
                         "The disk is full: this request was not applied; retry once space is freed");
    case StoreErrorKind::kIo:
    case StoreErrorKind::kCorrupt:
      return error_reply(ErrorCode::kStoreUnavailable,
                         "The store failed while committing this request and the service is "
                         "stopping; the request may or may not have been applied: retry with the "
                         "same Idempotency-Key once the service is back");
    default:
      return error_reply(ErrorCode::kStoreUnavailable,
                         "The store could not commit this request; it has no effect");
  }
}

}  // namespace

WalletService::WalletService(EventStore& store, const Clock& clock, IdGenerator& ids,
                             ServiceOptions options)
    : store_(store),
      clock_(clock),
      ids_(ids),
      options_(std::move(options)),
      pipelined_(options_.run_writer_thread && store.pipelined() && !store.shared()) {}

WalletService::~WalletService() { stop(); }

Status<StoreError> WalletService::start() {
  auto loaded = store_.load_wallets();
  if (!loaded) return fail(loaded.error());
  auto last = store_.last_position();
  if (!last) return fail(last.error());
  {
    std::unique_lock lock(wallets_mutex_);
    wallets_.reserve(loaded.value().size());
    for (WalletState& wallet : loaded.value()) {
      WALLEX_CHECK(wallet.version >= 0 && wallet.balance.minor() >= 0);
      std::string id = wallet.id;
      wallets_.emplace(std::move(id), std::move(wallet));
    }
  }
  last_position_.store(last.value());
  last_purge_ms_ = clock_.now_ms();
  {
    std::lock_guard lock(queue_mutex_);
    accepting_ = true;
  }
  if (options_.run_writer_thread) {
    writer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "wallex-writer");  // shows in top -H and perf
      run();
    });
  }
  if (pipelined_) {
    syncer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "wallex-sync");
      run_syncer();
    });
  }
  return Ok{};
}

void WalletService::report_fatal(const StoreError& error) {
  store_failed_.store(true);
  if (!fatal_reported_.exchange(true) && options_.on_fatal) options_.on_fatal(error);
}

template <typename Push>
void WalletService::enqueue(ReplyCallback& done, Push push) {
  std::optional<Reply> refusal;
  bool wake = false;
  {
    std::lock_guard lock(queue_mutex_);
    if (!accepting_ || store_failed_.load()) {
      refusal = store_failed_.load()
                    ? error_reply(ErrorCode::kStoreUnavailable, "The store has failed")
                    : error_reply(ErrorCode::kShuttingDown, "The service is shutting down");
    } else if (queue_.size() + reads_.size() >= options_.queue_length_max) {
      refusal = error_reply(ErrorCode::kOverloaded, "Too many requests are waiting; retry shortly");
    } else {
      push();
      // Not while commands gather: the writer would wake only to wait again.
      wake = writer_may_take();
    }
  }
  if (refusal) {
    done(std::move(*refusal));
    return;
  }
  if (wake) queue_ready_.notify_one();
}

bool WalletService::writer_may_take() const {
  return !reads_.empty() || stopping_ ||
         (!queue_.empty() &&
          (!pipelined_ || syncer_idle_ || queue_.size() >= options_.sync_gather_commands));
}

void WalletService::submit(CommandRequest request, ReplyCallback done) {
  enqueue(done, [&] { queue_.push_back(Pending{std::move(request), std::move(done)}); });
}

void WalletService::read_wallet(std::string id, ReplyCallback done) {
  if (!store_.shared()) {
    const std::optional<WalletState> wallet = find_wallet(id);
    if (!wallet) {
      done(error_reply(ErrorCode::kWalletNotFound, "Wallet " + id + " not found"));
    } else {
      done(Reply{200, encode_snapshot(*wallet), 0, false});
    }
    return;
  }
  enqueue(done, [&] { reads_.push_back(PendingRead{std::move(id), std::move(done)}); });
}

std::optional<WalletState> WalletService::find_wallet(std::string_view id) const {
  std::shared_lock lock(wallets_mutex_);
  const auto it = wallets_.find(id);
  if (it == wallets_.end()) return std::nullopt;
  return it->second;
}

ServiceHealth WalletService::health() const {
  ServiceHealth health;
  {
    std::lock_guard lock(queue_mutex_);
    health.accepting = accepting_;
    health.queue_length = queue_.size();
  }
  {
    std::shared_lock lock(wallets_mutex_);
    health.wallet_count = wallets_.size();
  }
  health.store_failed = store_failed_.load();
  health.last_position = last_position_.load();
  health.commits = commits_.load();
  health.commands = commands_.load();
  health.conflicts = conflicts_.load();
  const std::uint64_t durable = durable_seq_.load();  // first: never ahead of written_seq_
  health.unsynced_batches = written_seq_.load() - durable;
  return health;
}

void WalletService::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    accepting_ = false;
    stopping_ = true;
  }
  queue_ready_.notify_all();
  if (writer_.joinable()) writer_.join();
  // The writer has handed over its last batch: the syncer answers it and every other, then ends.
  {
    std::lock_guard lock(sync_mutex_);
    sync_stopping_ = true;
  }
  sync_ready_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  if (!options_.run_writer_thread) {
    while (drive_once() > 0) {
    }
  }
}

void WalletService::run() {
  std::deque<Pending> batch;
  std::vector<PendingRead> reads;
  while (take_batch(batch, reads, true)) {
    // Reads first: each was queued before the commands taken with it were decided, so it need
    // not see them (and it sees every commit acknowledged before it was queued).
    if (!reads.empty()) {
      process_reads(reads);
      reads.clear();
    }
    if (!batch.empty()) {
      process_batch(batch);
      batch.clear();
    }
    purge_if_due();
  }
}

std::size_t WalletService::drive_once() {
  WALLEX_CHECK(!options_.run_writer_thread);
  std::deque<Pending> batch;
  std::vector<PendingRead> reads;
  take_batch(batch, reads, false);
  const std::size_t processed = batch.size() + reads.size();
  if (!reads.empty()) process_reads(reads);
  if (!batch.empty()) process_batch(batch);
  purge_if_due();
  return processed;
}

bool WalletService::take_batch(std::deque<Pending>& batch, std::vector<PendingRead>& reads,
                               bool wait) {
  std::unique_lock lock(queue_mutex_);
  if (wait) {
    // Wakes at least once per purge interval so expired keys are purged on an idle service too.
    queue_ready_.wait_for(lock, std::chrono::milliseconds(options_.purge_interval_ms),
                          [this] { return writer_may_take(); });
  }
  if (queue_.empty() && reads_.empty() && stopping_) return false;
  const std::size_t take = std::min(queue_.size(), options_.batch_commands_max);
  for (std::size_t i = 0; i < take; ++i) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  // Reads are cheap (one query for all of them): every queued read goes with each batch.
  reads.swap(reads_);
  return true;
}

void WalletService::process_reads(std::vector<PendingRead>& reads) {
  if (store_failed_.load()) {
    for (PendingRead& r : reads) r.done(error_reply(ErrorCode::kStoreUnavailable, "The store has failed"));
    return;
  }
  std::vector<std::string> ids;
  ids.reserve(reads.size());
  for (const PendingRead& r : reads) ids.push_back(r.wallet_id);
  auto stored = store_.read_wallets(ids);
  if (!stored) {
    const StoreError& error = stored.error();
    log::error("reading wallets failed: " + error.message);
    if (is_fatal(error)) {
      report_fatal(error);
    }
    for (PendingRead& r : reads) {
      r.done(error_reply(ErrorCode::kStoreUnavailable, "The store is unavailable"));
    }
    return;
  }
  WalletMap found;
  {
    std::unique_lock lock(wallets_mutex_);
    for (WalletState& wallet : stored.value()) {
      WALLEX_CHECK(wallet.version >= 0 && wallet.balance.minor() >= 0);
      const auto it = wallets_.find(wallet.id);
      WALLEX_CHECK(it == wallets_.end() || wallet.version >= it->second.version);
      wallets_.insert_or_assign(wallet.id, wallet);
      std::string id = wallet.id;
      found.insert_or_assign(std::move(id), std::move(wallet));
    }
  }
  for (PendingRead& r : reads) {
    const auto it = found.find(r.wallet_id);
    if (it == found.end()) {
      r.done(error_reply(ErrorCode::kWalletNotFound, "Wallet " + r.wallet_id + " not found"));
    } else {
      r.done(Reply{200, encode_snapshot(it->second), 0, false});
    }
  }
}

void WalletService::purge_if_due() {
  const TimestampMs now = clock_.now_ms();
  if (now - last_purge_ms_ >= options_.purge_interval_ms && !store_failed_.load()) {
    purge_expired_keys(now);
    last_purge_ms_ = now;
  }
}

void WalletService::process_batch(std::deque<Pending>& batch) {
  commands_.fetch_add(batch.size());
  if (store_failed_.load()) {
    for (Pending& p : batch) p.done(error_reply(ErrorCode::kStoreUnavailable, "The store has failed"));
    return;
  }
  std::vector<Pending*> commands;
  commands.reserve(batch.size());
  for (Pending& pending : batch) commands.push_back(&pending);
  if (!store_.shared()) {
    // This process owns the store: in-memory state is authoritative and a commit never meets
    // another writer's changes, so the batch is decided and committed once.
    (void)attempt(commands, /*shared=*/false);
    return;
  }

  // Other instances commit to the same store. A conflict means one of them changed a wallet or
  // wrote an idempotency key of this attempt since it was read: nothing was written, so the
  // commands are decided again on fresh state. A batch that keeps conflicting is split (the
  // fewer wallets an attempt touches, the likelier it commits), down to one command per
  // attempt; only a single command that conflicts single_command_attempts_max times in a row
  // gets a 503. Every conflict means another instance committed, so the system as a whole
  // always progresses.
  std::size_t begin = 0;
  std::size_t chunk = commands.size();
  std::size_t conflicts_at_this_size = 0;
  std::size_t single_attempts = 0;
  while (begin < commands.size()) {
    if (store_failed_.load()) {
      for (std::size_t i = begin; i < commands.size(); ++i) {
        commands[i]->done(error_reply(ErrorCode::kStoreUnavailable, "The store has failed"));
      }
      return;
    }
    const std::size_t count = std::min(chunk, commands.size() - begin);
    const std::span<Pending*> slice(commands.data() + begin, count);
    const AttemptOutcome outcome = attempt(slice, /*shared=*/true);
    if (outcome != AttemptOutcome::kConflict) {  // answered, committed or failed
      begin += count;
      conflicts_at_this_size = 0;
      single_attempts = 0;
      continue;
    }
    conflicts_.fetch_add(1);
    if (count == 1) {
      if (++single_attempts >= options_.single_command_attempts_max) {
        commands[begin]->done(error_reply(
            ErrorCode::kStoreUnavailable,
            "Other instances kept changing the wallets of this request: not applied after " +
                std::to_string(single_attempts) + " attempts; retry"));
        ++begin;
        single_attempts = 0;
        continue;
      }
      // Spread the next attempt of a lone contended command (0 to 2 ms, growing with the
      // attempts) so that two instances on the same hot wallet stop colliding in lockstep.
      const auto limit_us = static_cast<std::uint32_t>(std::min<std::size_t>(single_attempts, 8) * 250);
      backoff_state_ = backoff_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
      std::this_thread::sleep_for(
          std::chrono::microseconds((backoff_state_ >> 33) % (limit_us + 1)));
    } else if (++conflicts_at_this_size >= options_.conflict_attempts_per_size) {
      chunk = std::max<std::size_t>(1, count / 2);
      conflicts_at_this_size = 0;
    }
  }
}

Status<StoreError> WalletService::refresh_wallets(std::span<Pending*> commands) {
  std::vector<std::string> ids;
  ids.reserve(commands.size() * 2);
  std::unordered_set<std::string_view> seen;
  const auto add = [&](const std::string& id) {
    if (seen.insert(id).second) ids.push_back(id);
  };
  for (const Pending* pending : commands) {
    std::visit(
        [&](const auto& command) {
          using T = std::decay_t<decltype(command)>;
          if constexpr (std::is_same_v<T, TransferMoney>) {
            add(command.from_wallet_id);
            add(command.to_wallet_id);
          } else {
            add(command.wallet_id);
          }
        },
        pending->request.command);
  }
  auto stored = store_.read_wallets(ids);
  if (!stored) return fail(stored.error());
  std::unique_lock lock(wallets_mutex_);
  for (WalletState& wallet : stored.value()) {
    WALLEX_CHECK(wallet.version >= 0 && wallet.balance.minor() >= 0);
    const auto it = wallets_.find(wallet.id);
    if (it == wallets_.end()) {
      std::string id = wallet.id;
      wallets_.emplace(std::move(id), std::move(wallet));
    } else {
      // Versions only grow: a stored state older than the published one would be a store
      // that lost a commit this instance saw acknowledged.
      WALLEX_CHECK(wallet.version >= it->second.version);
      it->second = std::move(wallet);
    }
  }
  return Ok{};
}

WalletService::AttemptOutcome WalletService::attempt(std::span<Pending*> commands, bool shared) {
  // A read that fails with an I/O error or finds damage is as fatal as a failed write.
  const auto read_failed = [&](const StoreError& error, std::string_view what) {
    log::error(std::string(what) + " failed: " + error.message);
    if (is_fatal(error)) {
      report_fatal(error);
    }
    for (Pending* p : commands) {
      p->done(error_reply(ErrorCode::kStoreUnavailable, "The store is unavailable"));
    }
    return AttemptOutcome::kFailed;
  };
  if (pipelined_) forget_durable();
  // The state before this attempt: of the batches written but not durable yet (pipelined; the
  // map is empty otherwise), else the published one. The syncer inserts into wallets_ (hence the
  // lock) but never writes a state the writer may read here: a wallet it publishes is in
  // unsynced_wallets_ until forget_durable() has seen the publication.
  const auto before = [&](std::string_view id) -> const WalletState* {
    if (const auto it = unsynced_wallets_.find(id); it != unsynced_wallets_.end()) {
      return &it->second.first;
    }
    std::shared_lock lock(wallets_mutex_);
    const auto it = wallets_.find(id);
    return it == wallets_.end() ? nullptr : &it->second;
  };
  // Decisions of this attempt, not yet written: they shadow the state before it. Each with the
  // version it had before the attempt (-1: created by it), which its commit expects.
  struct Staged {
    WalletState state;
    std::int64_t expected_version = -1;
  };
  std::unordered_map<std::string, Staged, StringHash, std::equal_to<>> staged;
  std::unordered_set<std::string_view> staged_keys;
  const WalletLookup lookup = [&](std::string_view id) -> const WalletState* {
    if (const auto it = staged.find(id); it != staged.end()) return &it->second.state;
    return before(id);
  };

  struct Awaiting {
    ReplyCallback* done;
    Reply reply;
    std::optional<std::size_t> entry;  // index into commit.entries when the command wrote any
    bool final = false;  // a replay or refusal that does not depend on the commit
  };
  std::vector<Awaiting> awaiting;
  awaiting.reserve(commands.size());
  CommitBatch commit;
  commit.keep_documents = static_cast<bool>(options_.on_durable_events);
  // Without other writers, answers that do not depend on the commit go out at once; with them,
  // the attempt may be decided again, so every answer waits for its outcome.
  const auto answer_now = [&](Pending& pending, Reply reply) {
    if (shared) {
      awaiting.push_back(Awaiting{&pending.done, std::move(reply), std::nullopt, true});
    } else {
      pending.done(std::move(reply));
    }
  };

  // Every key of the attempt is looked up in one store call before any decision.
  std::vector<std::string> keys;
  for (const Pending* pending : commands) {
    if (pending->request.idempotency_key) keys.push_back(*pending->request.idempotency_key);
  }
  std::vector<std::optional<IdempotencyRecord>> records;
  if (!keys.empty()) {
    auto found = store_.find_idempotency_many(keys);
    if (!found) return read_failed(found.error(), "idempotency lookup");
    records = std::move(found).value();
  }
  // With other writers, the wallets are read after the keys: a record found above committed
  // with its wallets, so they are read too, and a replay can rebuild its reply from them
  // (service/reply_encoding.h). Read before the keys, a create committed elsewhere in between
  // would leave the key's record without its wallet.
  if (shared) {
    if (auto refreshed = refresh_wallets(commands); !refreshed) {
      return read_failed(refreshed.error(), "reading the batch's wallets");
    }
  }
  std::size_t next_record = 0;

  for (Pending* pending_pointer : commands) {
    Pending& pending = *pending_pointer;
    CommandRequest& request = pending.request;
    const TimestampMs now = clock_.now_ms();
    std::string request_fingerprint;
    std::optional<TimestampMs> replaces_record;
    if (request.idempotency_key) {
      const std::string& key = *request.idempotency_key;
      const std::optional<IdempotencyRecord>& record = records[next_record++];
      if (staged_keys.contains(key) || unsynced_keys_.contains(key)) {
        answer_now(pending, error_reply(ErrorCode::kIdempotencyRequestInFlight,
                                        "A request with this idempotency key is already being processed"));
        continue;
      }
      request_fingerprint = fingerprint(request.command);
      if (record && record->created_at_ms + options_.idempotency_retention_ms > now) {
        if (record->fingerprint == request_fingerprint) {
          if (auto body = replay_body(record->body, request.command, lookup)) {
            answer_now(pending, Reply{record->status, std::move(*body), record->position, true});
          } else {
            log::error("the stored reply of idempotency key " + key + " cannot be rebuilt");
            answer_now(pending, error_reply(ErrorCode::kStoreUnavailable,
                                            "The stored reply of this request cannot be read"));
          }
        } else {
          answer_now(pending, error_reply(ErrorCode::kIdempotencyKeyReused,
                                          "Idempotency key reused with a different request"));
        }
        continue;
      }
      if (record) replaces_record = record->created_at_ms;  // expired, not purged yet
    }

    if (auto* transfer = std::get_if<TransferMoney>(&request.command)) {
      transfer->transfer_id = ids_.next_time_ordered_uuid(now);
    }
    auto decision = decide(request.command, lookup, now);
    Reply reply;
    std::string stored_body;  // the record's form of reply.body (service/reply_encoding.h)
    CommitBatch::Entry entry;
    if (decision) {
      // The wallets of the first two events, as they are after the decision (a transfer's are
      // its source's and its destination's; elements of `staged` stay where they are).
      const WalletState* changed[2] = {nullptr, nullptr};
      std::size_t changes = 0;
      for (const Event& event : decision.value()) {
        // A wallet this attempt changed already changes in place; another is copied once.
        WalletState* state = nullptr;
        if (const auto it = staged.find(event.wallet_id); it != staged.end()) {
          state = &it->second.state;
          apply_money_event(*state, event);
        } else if (const WalletState* current = before(event.wallet_id); current != nullptr) {
          Staged next{*current, current->version};
          apply_money_event(next.state, event);
          state = &staged.emplace(event.wallet_id, std::move(next)).first->second.state;
        } else {
          state = &staged.emplace(event.wallet_id, Staged{wallex::apply(std::nullopt, event), -1})
                       .first->second.state;
        }
        if (changes < 2) changed[changes++] = state;
      }
      reply.status = 201;
      if (const auto* transfer = std::get_if<TransferMoney>(&request.command)) {
        WALLEX_CHECK(changes == 2 && changed[0]->id == transfer->from_wallet_id &&
                     changed[1]->id == transfer->to_wallet_id);
        const WalletState& from = *changed[0];
        const WalletState& to = *changed[1];
        reply.body = encode_transfer(from, to, transfer->transfer_id);
        if (request.idempotency_key) stored_body = stored_transfer(from, to, transfer->transfer_id);
      } else {
        const WalletState& wallet = *changed[0];
        reply.body = encode_snapshot(wallet);
        if (request.idempotency_key) stored_body = stored_snapshot(wallet);
      }
      entry.events = std::move(decision).value();
      entry.metadata = EventMetadata{request.correlation_id, request.idempotency_key};
    } else {
      reply = error_reply(decision.error().code, decision.error().message);
    }
    if (request.idempotency_key) {
      if (stored_body.empty()) stored_body = reply.body;
      entry.idempotency = IdempotencyRecord{*request.idempotency_key,
                                            std::move(request_fingerprint),
                                            reply.status,
                                            std::move(stored_body),
                                            0,
                                            now};
      entry.replaces_record_created_at_ms = replaces_record;
      staged_keys.insert(*request.idempotency_key);  // the key lives in `batch` until replies go
    }
    std::optional<std::size_t> entry_index;
    if (!entry.events.empty() || entry.idempotency) {
      entry_index = commit.entries.size();
      commit.entries.push_back(std::move(entry));
    }
    awaiting.push_back(Awaiting{&pending.done, std::move(reply), entry_index});
  }

  std::int64_t last_position = 0;
  std::vector<LoggedEvent> logged;  // for on_durable_events
  // The batch's wallets after it, taken from the commit once written: what gets published.
  std::vector<WalletState> written;
  if (!commit.entries.empty()) {
    commit.wallets.reserve(staged.size());
    for (const auto& [id, wallet] : staged) {
      commit.wallets.push_back(WalletWrite{wallet.state, wallet.expected_version});
    }
    auto committed = pipelined_ ? store_.write(commit) : store_.commit(commit);
    if (!committed) {
      const StoreError& error = committed.error();
      // Another instance got there first: nothing was written and nobody was answered yet.
      if (shared && error.kind == StoreErrorKind::kConflict) return AttemptOutcome::kConflict;
      log::error("commit of " + std::to_string(commit.entries.size()) +
                 " requests failed: " + error.message);
      // A fatal failure is recorded before anyone hears of it, so no client can observe the
      // 503 and then find the service still taking commands.
      if (is_fatal(error)) report_fatal(error);
      // Nothing of this batch was acknowledged: every reply decided in it is withdrawn. The
      // in-memory state stays at the last acknowledged (pipelined: written) commit.
      for (Awaiting& a : awaiting) {
        (*a.done)(a.final ? std::move(a.reply) : failed_commit_reply(error));
      }
      return AttemptOutcome::kFailed;
    }
    last_position = committed.value().last_position;
    for (Awaiting& a : awaiting) {
      if (a.entry) a.reply.position = committed.value().entry_positions[*a.entry];
    }
    if (commit.keep_documents) logged = logged_events(commit, committed.value());
    written.reserve(commit.wallets.size());
    for (WalletWrite& write : commit.wallets) written.push_back(std::move(write.state));
  }
  const bool wrote = !commit.entries.empty();

  if (pipelined_) {
    // Written, not durable: the syncer publishes and answers once an fsync covers it. Answers
    // decided on state that is not durable yet (a refusal for lack of the funds a pending debit
    // took, say) wait for that state's fsync too.
    if (!wrote && (awaiting.empty() || written_seq_ == durable_seq_.load())) {
      for (Awaiting& a : awaiting) (*a.done)(std::move(a.reply));
      return AttemptOutcome::kDone;
    }
    SyncTicket ticket;
    ticket.seq = written_seq_.load() + 1;
    written_seq_.store(ticket.seq);
    ticket.wrote = wrote;
    ticket.last_position = last_position;
    ticket.wallets = std::move(written);
    ticket.events = std::move(logged);
    for (auto& [id, wallet] : staged) {
      unsynced_wallets_.insert_or_assign(id, std::pair(std::move(wallet.state), ticket.seq));
    }
    for (const std::string_view key : staged_keys) {
      unsynced_keys_.insert_or_assign(std::string(key), ticket.seq);
    }
    ticket.answers.reserve(awaiting.size());
    for (Awaiting& a : awaiting) {
      ticket.answers.push_back(
          SyncTicket::Answer{std::move(*a.done), std::move(a.reply), a.entry.has_value()});
    }
    queue_for_sync(std::move(ticket));
    return AttemptOutcome::kDone;
  }

  if (wrote) {
    if (!logged.empty()) options_.on_durable_events(std::move(logged));
    publish(written, last_position);
  }
  for (Awaiting& a : awaiting) (*a.done)(std::move(a.reply));
  return AttemptOutcome::kDone;
}

std::vector<LoggedEvent> WalletService::logged_events(CommitBatch& commit, CommitResult& result) {
  std::vector<LoggedEvent> logged;
  std::size_t count = 0;
  for (const CommitBatch::Entry& entry : commit.entries) count += entry.events.size();
  // A store that kept no documents (or not one for each event): the projector reads the log.
  if (count == 0 || result.documents.size() != count) return logged;
  logged.reserve(count);
  std::int64_t position = result.last_position - static_cast<std::int64_t>(count);
  for (CommitBatch::Entry& entry : commit.entries) {
    for (std::size_t i = 0; i < entry.events.size(); ++i) {
      LoggedEvent& event = logged.emplace_back();
      event.position = ++position;
      event.event = std::move(entry.events[i]);
      // The entry's events share its metadata: copied for all but the last.
      event.metadata = i + 1 < entry.events.size() ? entry.metadata : std::move(entry.metadata);
      EventDocuments& documents = result.documents[logged.size() - 1];
      event.data_json = std::move(documents.data_json);
      event.metadata_json = std::move(documents.metadata_json);
    }
  }
  return logged;
}

void WalletService::publish(std::vector<WalletState>& wallets, std::int64_t last_position) {
  {
    std::unique_lock lock(wallets_mutex_);
    // A new element's key is copied from wallet.id before the state is moved (pair order).
    for (WalletState& wallet : wallets) wallets_.insert_or_assign(wallet.id, std::move(wallet));
  }
  last_position_.store(last_position);
  commits_.fetch_add(1);
  if (options_.on_commit) options_.on_commit(last_position);
}

void WalletService::forget_durable() {
  const std::uint64_t durable = durable_seq_.load(std::memory_order_acquire);
  // Nothing became durable since the last call: every entry left is of a later batch.
  if (durable == forgotten_seq_) return;
  forgotten_seq_ = durable;
  std::erase_if(unsynced_wallets_, [durable](const auto& item) { return item.second.second <= durable; });
  std::erase_if(unsynced_keys_, [durable](const auto& item) { return item.second <= durable; });
}

void WalletService::queue_for_sync(SyncTicket ticket) {
  {
    std::unique_lock lock(sync_mutex_);
    sync_space_.wait(lock, [this] { return sync_queue_.size() < options_.sync_batches_max; });
    sync_queue_.push_back(std::move(ticket));
  }
  sync_ready_.notify_one();
}

void WalletService::set_syncer_idle(bool idle) {
  {
    std::lock_guard lock(queue_mutex_);
    if (syncer_idle_ == idle) return;
    syncer_idle_ = idle;
  }
  if (idle) queue_ready_.notify_one();  // the commands that gathered meanwhile
}

void WalletService::run_syncer() {
  std::vector<SyncTicket> tickets;
  while (true) {
    {
      std::unique_lock lock(sync_mutex_);
      if (sync_queue_.empty() && !sync_stopping_) {
        // Nothing to fsync: the writer may write at once. (Not under sync_mutex_: the writer
        // holds queue_mutex_ and sync_mutex_ never together, nor does this thread.)
        lock.unlock();
        set_syncer_idle(true);
        lock.lock();
      }
      sync_ready_.wait(lock, [this] { return !sync_queue_.empty() || sync_stopping_; });
      if (sync_queue_.empty()) return;  // stopping, and every batch answered
      for (SyncTicket& ticket : sync_queue_) tickets.push_back(std::move(ticket));
      sync_queue_.clear();
    }
    sync_space_.notify_one();
    set_syncer_idle(false);
    // One fsync for every batch written so far: the group commit of the pipelined store. A
    // group of answers only (no batch wrote) depends on earlier batches, all durable by now.
    Status<StoreError> synced = Ok{};
    if (store_failed_.load()) {
      // After a failed fsync nothing written since is acknowledged, whatever a later fsync says.
      synced = fail(StoreError{StoreErrorKind::kIo, "the store failed earlier"});
    } else if (std::any_of(tickets.begin(), tickets.end(),
                           [](const SyncTicket& t) { return t.wrote; })) {
      synced = store_.sync();
    }
    if (!synced) {
      const StoreError& error = synced.error();
      log::error("sync of " + std::to_string(tickets.size()) + " batches failed: " + error.message);
      report_fatal(error);
      for (SyncTicket& ticket : tickets) {
        for (SyncTicket::Answer& answer : ticket.answers) {
          answer.done(answer.depends_on_commit ? failed_commit_reply(error) : std::move(answer.reply));
        }
      }
    } else {
      for (SyncTicket& ticket : tickets) {
        if (ticket.wrote) {
          if (!ticket.events.empty()) options_.on_durable_events(std::move(ticket.events));
          publish(ticket.wallets, ticket.last_position);
        }
        durable_seq_.store(ticket.seq, std::memory_order_release);
        for (SyncTicket::Answer& answer : ticket.answers) answer.done(std::move(answer.reply));
      }
    }
    tickets.clear();
  }
}

void WalletService::purge_expired_keys(TimestampMs now_ms) {
  auto purged = store_.purge_idempotency(now_ms - options_.idempotency_retention_ms,
                                         options_.purge_batch_max);
  if (!purged) {
    log::warn("purging expired idempotency keys failed: " + purged.error().message);
  } else if (purged.value() > 0) {
    log::info("purged " + std::to_string(purged.value()) + " expired idempotency keys");
  }
}

}  // namespace wallex
