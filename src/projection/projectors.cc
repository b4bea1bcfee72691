#include "projection/projectors.h"

#include "domain/replay.h"

namespace wallex {
namespace {

// The cache slot of a wallet, loading it from the store on first use.
template <typename State, typename Load>
Result<typename StateCache<State>::Slot*, StoreError> slot_for(StateCache<State>& cache,
                                                               const LoggedEvent& event,
                                                               const ProjectorOptions& options,
                                                               Load&& load) {
  if (auto* slot = cache.find(event)) return slot;
  if (options.keep_all_state) return &cache.put(event, std::nullopt);
  auto loaded = load();
  if (!loaded) return fail(loaded.error());
  return &cache.put(event, std::move(loaded).value());
}

template <typename State>
void trim(StateCache<State>& cache, const ProjectorOptions& options) {
  if (!options.keep_all_state && cache.size() > options.cached_wallets_max) cache.clear();
}

}  // namespace

bool fill_entry(const LoggedEvent& stored, std::int64_t wallet_key, Money before, Money after,
                LedgerEntry& entry) {
  const Event& event = stored.event;
  switch (event.type) {
    case EventType::kWalletCreated:
      return false;
    case EventType::kWalletCredited:
      entry.type = EntryType::kCredit;
      break;
    case EventType::kWalletDebited:
      entry.type = EntryType::kDebit;
      break;
    case EventType::kWalletTransferInitiated:
      entry.type = EntryType::kTransferOut;
      break;
    case EventType::kWalletTransferCompleted:
      entry.type = EntryType::kTransferIn;
      break;
  }
  entry.position = stored.position;
  entry.wallet_id.assign(event.wallet_id);
  entry.wallet_key = wallet_key;
  entry.version = event.version;
  entry.amount = event.amount;
  entry.balance_before = before;
  entry.balance_after = after;
  if (event.description) {
    if (!entry.description) entry.description.emplace();
    entry.description->assign(*event.description);
  } else {
    entry.description.reset();
  }
  if (entry.type == EntryType::kTransferOut || entry.type == EntryType::kTransferIn) {
    entry.reference_id.assign(event.transfer_id);
    if (!entry.related_wallet_id) entry.related_wallet_id.emplace();
    entry.related_wallet_id->assign(event.counterparty_id);
  } else {
    entry.reference_id.assign(event.wallet_id);
    entry.reference_id += ':';
    entry.reference_id += std::to_string(event.version);
    entry.related_wallet_id.reset();
  }
  entry.metadata.assign(stored.metadata_json);
  entry.created_at_ms = event.occurred_at_ms;
  return true;
}

std::optional<LedgerEntry> entry_for_event(const LoggedEvent& stored, std::int64_t wallet_key,
                                           Money before, Money after) {
  LedgerEntry entry;
  if (!fill_entry(stored, wallet_key, before, after, entry)) return std::nullopt;
  return entry;
}

// ---------------------------------------------------------------------------------- read model

Status<StoreError> ReadModelProjector::apply(const LoggedEvent& stored, ReadStore& store) {
  const Event& event = stored.event;
  auto slot =
      slot_for(cache_, stored, options_, [&] { return store.read_wallet(event.wallet_id); });
  if (!slot) return fail(slot.error());
  std::optional<WalletState>& state = slot.value()->state;
  if (state && event.type != EventType::kWalletCreated) {
    // The common case, in place: the slot is the event's wallet (found by its id or slot).
    if (auto applied = replay_money_event(*state, event); !applied) {
      return fail(projection_error(id(), stored, applied.error()));
    }
  } else {
    auto next = replay(state, event);
    if (!next) return fail(projection_error(id(), stored, next.error()));
    state = std::move(next).value();
  }
  cache_.mark_dirty(stored, *slot.value());
  return Ok{};
}

Status<StoreError> ReadModelProjector::flush(ReadStore& store) {
  auto flushed =
      cache_.flush([&](const WalletState& wallet) { return store.put_read_wallet(wallet); });
  if (!flushed) return flushed;
  trim(cache_, options_);
  return Ok{};
}

// ---------------------------------------------------------------------------------- ledger

Status<StoreError> LedgerProjector::apply(const LoggedEvent& stored, ReadStore& store) {
  const Event& event = stored.event;
  auto found =
      slot_for(cache_, stored, options_, [&] { return store.ledger_wallet(event.wallet_id); });
  if (!found) return fail(found.error());
  auto& slot = *found.value();
  if (event.type == EventType::kWalletCreated) {
    if (slot.state) return fail(projection_error(id(), stored, "wallet created twice"));
    if (event.version != 0) return fail(projection_error(id(), stored, "created at a version > 0"));
    slot.state = LedgerWallet{event.wallet_id, stored.position, 0, Money(), 0, 0, 0};
    cache_.mark_dirty(stored, slot);
    return Ok{};
  }
  if (!slot.state)
    return fail(projection_error(id(), stored, "event before the wallet was created"));
  LedgerWallet& wallet = *slot.state;
  auto after = replay_balance(wallet.version, wallet.balance, event);
  if (!after) return fail(projection_error(id(), stored, after.error()));
  fill_entry(stored, wallet.wallet_key, wallet.balance, after.value(), entry_);
  std::int64_t& total = entry_adds(entry_.type) ? wallet.credits_minor : wallet.debits_minor;
  std::int64_t new_total = 0;
  if (__builtin_add_overflow(total, entry_.amount.minor(), &new_total)) {
    return fail(projection_error(id(), stored, "total of the wallet overflows"));
  }
  if (auto inserted = store.insert_entry(entry_); !inserted) return inserted;
  total = new_total;
  wallet.version = event.version;
  wallet.balance = after.value();
  ++wallet.entry_count;
  cache_.mark_dirty(stored, slot);
  return Ok{};
}

Status<StoreError> LedgerProjector::flush(ReadStore& store) {
  auto flushed =
      cache_.flush([&](const LedgerWallet& wallet) { return store.put_ledger_wallet(wallet); });
  if (!flushed) return flushed;
  trim(cache_, options_);
  return Ok{};
}

// ---------------------------------------------------------------------------------- wallet events

Status<StoreError> WalletEventsProjector::apply(const LoggedEvent& stored, ReadStore& store) {
  const Event& event = stored.event;
  auto found =
      slot_for(cache_, stored, options_, [&] { return store.event_wallet(event.wallet_id); });
  if (!found) return fail(found.error());
  auto& slot = *found.value();
  Money balance;
  if (event.type == EventType::kWalletCreated) {
    if (slot.state) return fail(projection_error(id(), stored, "wallet created twice"));
    if (event.version != 0) return fail(projection_error(id(), stored, "created at a version > 0"));
    slot.state = EventWallet{event.wallet_id, stored.position, 0, Money()};
  } else {
    if (!slot.state) {
      return fail(projection_error(id(), stored, "event before the wallet was created"));
    }
    auto after = replay_balance(slot.state->version, slot.state->balance, event);
    if (!after) return fail(projection_error(id(), stored, after.error()));
    balance = after.value();
  }
  WalletEventRow& row = row_;
  row.position = stored.position;
  row.wallet_id.assign(event.wallet_id);
  row.wallet_key = slot.state->wallet_key;
  row.version = event.version;
  row.type = event.type;
  row.data.assign(stored.data_json);
  row.metadata.assign(stored.metadata_json);
  row.occurred_at_ms = event.occurred_at_ms;
  row.balance_after = balance;
  if (auto inserted = store.insert_wallet_event(row); !inserted) return inserted;
  slot.state->version = event.version;
  slot.state->balance = balance;
  cache_.mark_dirty(stored, slot);
  return Ok{};
}

Status<StoreError> WalletEventsProjector::flush(ReadStore& store) {
  auto flushed =
      cache_.flush([&](const EventWallet& wallet) { return store.put_event_wallet(wallet); });
  if (!flushed) return flushed;
  trim(cache_, options_);
  return Ok{};
}

std::vector<std::unique_ptr<Projector>> make_projectors(ProjectorOptions options) {
  std::vector<std::unique_ptr<Projector>> projectors;
  projectors.push_back(std::make_unique<ReadModelProjector>(options));
  projectors.push_back(std::make_unique<LedgerProjector>(options));
  projectors.push_back(std::make_unique<WalletEventsProjector>(options));
  return projectors;
}

}  // namespace wallex
