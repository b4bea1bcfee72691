#include "memory_store.h"

#include <unordered_map>

#include "store/event_codec.h"

namespace wallex::testing {

Result<std::vector<WalletState>, StoreError> MemoryStore::load_wallets() {
  std::vector<WalletState> wallets;
  for (const auto& [id, wallet] : wallets_) wallets.push_back(wallet);
  return wallets;
}

Result<std::vector<WalletState>, StoreError> MemoryStore::read_wallets(
    const std::vector<std::string>& ids) {
  std::vector<WalletState> wallets;
  for (const std::string& id : ids) {
    if (const auto it = wallets_.find(id); it != wallets_.end()) wallets.push_back(it->second);
  }
  return wallets;
}

Result<std::optional<IdempotencyRecord>, StoreError> MemoryStore::find_idempotency(
    std::string_view key) {
  const auto it = keys_.find(key);
  if (it == keys_.end()) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(it->second);
}

Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> MemoryStore::find_idempotency_many(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<IdempotencyRecord>> records;
  for (const std::string& key : keys) records.push_back(find_idempotency(key).value());
  return records;
}

Result<CommitResult, StoreError> MemoryStore::commit(const CommitBatch& batch) {
  // Validate everything first, then apply: all or nothing, as a database transaction.
  std::unordered_map<std::string, std::int64_t> next_version;
  for (const WalletWrite& write : batch.wallets) {
    const auto stored = wallets_.find(write.state.id);
    const std::int64_t stored_version = stored == wallets_.end() ? -1 : stored->second.version;
    if (stored_version != write.expected_version) {
      return fail(StoreError{StoreErrorKind::kConflict, "stale version of " + write.state.id});
    }
    next_version[write.state.id] = write.expected_version + 1;
  }
  for (const CommitBatch::Entry& entry : batch.entries) {
    for (const Event& event : entry.events) {
      const auto next = next_version.find(event.wallet_id);
      if (next == next_version.end() || next->second != event.version) {
        return fail(StoreError{StoreErrorKind::kConflict, "version gap in " + event.wallet_id});
      }
      ++next->second;
    }
  }
  for (const WalletWrite& write : batch.wallets) {
    if (next_version.at(write.state.id) != write.state.version + 1) {
      return fail(StoreError{StoreErrorKind::kConflict, "write model mismatch " + write.state.id});
    }
  }

  CommitResult result;
  std::int64_t position = events_.empty() ? 0 : events_.back().position;
  for (const CommitBatch::Entry& entry : batch.entries) {
    for (const Event& event : entry.events) {
      events_.push_back(StoredEvent{++position, event, entry.metadata});
      // The documents a log reader would give for the event (EventStoreLog encodes the same).
      if (batch.keep_documents) {
        result.documents.push_back(
            EventDocuments{encode_event_data(event), encode_event_metadata(event, entry.metadata)});
      }
    }
    const std::int64_t entry_position = entry.events.empty() ? 0 : position;
    result.entry_positions.push_back(entry_position);
    if (entry.idempotency) {
      IdempotencyRecord record = *entry.idempotency;
      record.position = entry_position;
      keys_.insert_or_assign(record.key, std::move(record));
    }
  }
  for (const WalletWrite& write : batch.wallets) wallets_.insert_or_assign(write.state.id, write.state);
  result.last_position = position;
  return result;
}

Result<std::int64_t, StoreError> MemoryStore::purge_idempotency(TimestampMs created_before_ms,
                                                                std::size_t limit) {
  std::int64_t purged = 0;
  for (auto it = keys_.begin(); it != keys_.end() && static_cast<std::size_t>(purged) < limit;) {
    if (it->second.created_at_ms < created_before_ms) {
      it = keys_.erase(it);
      ++purged;
    } else {
      ++it;
    }
  }
  return purged;
}

Result<std::vector<StoredEvent>, StoreError> MemoryStore::read_events(std::int64_t after_position,
                                                                      std::size_t limit) {
  std::vector<StoredEvent> out;
  for (const StoredEvent& event : events_) {
    if (event.position > after_position && out.size() < limit) out.push_back(event);
  }
  return out;
}

Result<std::int64_t, StoreError> MemoryStore::last_position() {
  return events_.empty() ? 0 : events_.back().position;
}

Result<CommitResult, StoreError> FaultyStore::commit(const CommitBatch& batch) {
  const double roll = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  if (roll < odds_.full) {
    last_outcome_ = CommitOutcome::kFull;
    return fail(StoreError{StoreErrorKind::kFull, "simulated: disk full"});
  }
  if (roll < odds_.full + odds_.io_lost) {
    last_outcome_ = CommitOutcome::kIoLost;
    return fail(StoreError{StoreErrorKind::kIo, "simulated: fsync failed, nothing written"});
  }
  if (roll < odds_.full + odds_.io_lost + odds_.io_but_written) {
    auto written = inner_.commit(batch);
    if (!written) {
      last_outcome_ = CommitOutcome::kNone;
      return written;
    }
    last_outcome_ = CommitOutcome::kIoButWritten;
    return fail(StoreError{StoreErrorKind::kIo, "simulated: fsync failed after the write"});
  }
  auto result = inner_.commit(batch);
  // A real conflict is a bug in the service, not an injected fault: report it as such.
  last_outcome_ = result ? CommitOutcome::kCommitted : CommitOutcome::kNone;
  return result;
}

}  // namespace wallex::testing
