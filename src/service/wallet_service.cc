#include "service/wallet_service.h"

#include <pthread.h>

#include <chrono>
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
    : store_(store), clock_(clock), ids_(ids), options_(std::move(options)) {}

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
  return Ok{};
}

void WalletService::submit(CommandRequest request, ReplyCallback done) {
  std::optional<Reply> refusal;
  {
    std::lock_guard lock(queue_mutex_);
    if (!accepting_ || store_failed_.load()) {
      refusal = store_failed_.load()
                    ? error_reply(ErrorCode::kStoreUnavailable, "The store has failed")
                    : error_reply(ErrorCode::kShuttingDown, "The service is shutting down");
    } else if (queue_.size() >= options_.queue_length_max) {
      refusal = error_reply(ErrorCode::kOverloaded, "Too many requests are waiting; retry shortly");
    } else {
      queue_.push_back(Pending{std::move(request), std::move(done)});
    }
  }
  if (refusal) {
    done(std::move(*refusal));
    return;
  }
  queue_ready_.notify_one();
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
  if (!options_.run_writer_thread) {
    while (drive_once() > 0) {
    }
  }
}

void WalletService::run() {
  std::deque<Pending> batch;
  while (take_batch(batch, true)) {
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
  take_batch(batch, false);
  const std::size_t processed = batch.size();
  if (!batch.empty()) process_batch(batch);
  purge_if_due();
  return processed;
}

bool WalletService::take_batch(std::deque<Pending>& batch, bool wait) {
  std::unique_lock lock(queue_mutex_);
  if (wait) {
    // Wakes at least once per purge interval so expired keys are purged on an idle service too.
    queue_ready_.wait_for(lock, std::chrono::milliseconds(options_.purge_interval_ms),
                          [this] { return !queue_.empty() || stopping_; });
  }
  if (queue_.empty() && stopping_) return false;
  const std::size_t take = std::min(queue_.size(), options_.batch_commands_max);
  for (std::size_t i = 0; i < take; ++i) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return true;
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

  // Decisions of this batch, not yet durable: they shadow the published state.
  WalletMap staged;
  std::unordered_set<std::string_view> staged_keys;
  const WalletLookup lookup = [&](std::string_view id) -> const WalletState* {
    if (const auto it = staged.find(id); it != staged.end()) return &it->second;
    // Only this thread mutates wallets_, so reading it here needs no lock.
    if (const auto it = wallets_.find(id); it != wallets_.end()) return &it->second;
    return nullptr;
  };

  struct Awaiting {
    ReplyCallback* done;
    Reply reply;
    std::optional<std::size_t> entry;  // index into commit.entries when the command wrote any
  };
  std::vector<Awaiting> awaiting;
  awaiting.reserve(batch.size());
  CommitBatch commit;

  // Every key of the batch is looked up in one store call before any decision.
  std::vector<std::string> keys;
  for (const Pending& pending : batch) {
    if (pending.request.idempotency_key) keys.push_back(*pending.request.idempotency_key);
  }
  std::vector<std::optional<IdempotencyRecord>> records;
  if (!keys.empty()) {
    auto found = store_.find_idempotency_many(keys);
    if (!found) {
      const StoreError& error = found.error();
      log::error("idempotency lookup failed: " + error.message);
      // A read that fails with an I/O error or finds damage is as fatal as a failed write.
      if (is_fatal(error)) {
        store_failed_.store(true);
        if (options_.on_fatal) options_.on_fatal(error);
      }
      for (Pending& p : batch) {
        p.done(error_reply(ErrorCode::kStoreUnavailable, "The store is unavailable"));
      }
      return;
    }
    records = std::move(found).value();
  }
  std::size_t next_record = 0;

  for (Pending& pending : batch) {
    CommandRequest& request = pending.request;
    const TimestampMs now = clock_.now_ms();
    std::string request_fingerprint;
    if (request.idempotency_key) {
      const std::string& key = *request.idempotency_key;
      const std::optional<IdempotencyRecord>& record = records[next_record++];
      if (staged_keys.contains(key)) {
        pending.done(error_reply(ErrorCode::kIdempotencyRequestInFlight,
                                 "A request with this idempotency key is already being processed"));
        continue;
      }
      request_fingerprint = fingerprint(request.command);
      if (record && record->created_at_ms + options_.idempotency_retention_ms > now) {
        if (record->fingerprint == request_fingerprint) {
          pending.done(Reply{record->status, record->body, record->position, true});
        } else {
          pending.done(error_reply(ErrorCode::kIdempotencyKeyReused,
                                   "Idempotency key reused with a different request"));
        }
        continue;
      }
    }

    if (auto* transfer = std::get_if<TransferMoney>(&request.command)) {
      transfer->transfer_id = ids_.next_uuid();
    }
    auto decision = decide(request.command, lookup, now);
    Reply reply;
    CommitBatch::Entry entry;
    if (decision) {
      for (const Event& event : decision.value()) {
        const WalletState* current = lookup(event.wallet_id);
        WalletState next = wallex::apply(
            current != nullptr ? std::optional<WalletState>(*current) : std::nullopt, event);
        staged.insert_or_assign(event.wallet_id, std::move(next));
      }
      reply.status = 201;
      if (const auto* transfer = std::get_if<TransferMoney>(&request.command)) {
        reply.body = encode_transfer(*lookup(transfer->from_wallet_id),
                                     *lookup(transfer->to_wallet_id), transfer->transfer_id);
      } else {
        reply.body = encode_snapshot(*lookup(decision.value().front().wallet_id));
      }
      entry.events = std::move(decision).value();
      entry.metadata = EventMetadata{request.correlation_id, request.idempotency_key};
    } else {
      reply = error_reply(decision.error().code, decision.error().message);
    }
    if (request.idempotency_key) {
      entry.idempotency = IdempotencyRecord{*request.idempotency_key, std::move(request_fingerprint),
                                            reply.status, reply.body, 0, now};
      staged_keys.insert(*request.idempotency_key);  // the key lives in `batch` until replies go
    }
    std::optional<std::size_t> entry_index;
    if (!entry.events.empty() || entry.idempotency) {
      entry_index = commit.entries.size();
      commit.entries.push_back(std::move(entry));
    }
    awaiting.push_back(Awaiting{&pending.done, std::move(reply), entry_index});
  }

  if (!commit.entries.empty()) {
    commit.wallets.reserve(staged.size());
    for (const auto& [id, wallet] : staged) {
      const auto published = wallets_.find(id);
      commit.wallets.push_back(
          WalletWrite{wallet, published == wallets_.end() ? -1 : published->second.version});
    }
    auto committed = store_.commit(commit);
    if (!committed) {
      const StoreError& error = committed.error();
      log::error("commit of " + std::to_string(commit.entries.size()) +
                 " requests failed: " + error.message);
      // A fatal failure is recorded before anyone hears of it, so no client can observe the
      // 503 and then find the service still taking commands.
      if (is_fatal(error)) {
        store_failed_.store(true);
        if (options_.on_fatal) options_.on_fatal(error);
      }
      // Nothing of this batch was acknowledged: every reply decided in it is withdrawn. The
      // in-memory state stays at the last acknowledged commit.
      for (Awaiting& a : awaiting) (*a.done)(failed_commit_reply(error));
      return;
    }
    {
      std::unique_lock lock(wallets_mutex_);
      for (auto& [id, wallet] : staged) wallets_.insert_or_assign(id, std::move(wallet));
    }
    last_position_.store(committed.value().last_position);
    commits_.fetch_add(1);
    if (options_.on_commit) options_.on_commit(committed.value().last_position);
    for (Awaiting& a : awaiting) {
      if (a.entry) a.reply.position = committed.value().entry_positions[*a.entry];
    }
  }
  for (Awaiting& a : awaiting) (*a.done)(std::move(a.reply));
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
