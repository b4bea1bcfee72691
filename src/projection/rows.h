// The rows of the read side: what the projectors write and the queries read back. Plain values,
// no I/O; the SQLite tables that hold them are described in docs/event-format.md ("read.db").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "domain/money.h"
#include "domain/wallet.h"

namespace wallex {

// The projectors, each with its own checkpoint. The names are stored in read.db and reported by
// GET /health: changing one loses that projector's checkpoint.
enum class ProjectorId { kReadModel, kLedger, kWalletEvents };
inline constexpr ProjectorId kAllProjectors[] = {ProjectorId::kReadModel, ProjectorId::kLedger,
                                                 ProjectorId::kWalletEvents};
inline constexpr std::size_t kProjectorCount = 3;

std::string_view projector_name(ProjectorId id);  // "readModel", "ledger", "walletEvents"
std::optional<ProjectorId> projector_from_name(std::string_view name);
constexpr std::size_t projector_index(ProjectorId id) { return static_cast<std::size_t>(id); }

struct Checkpoint {
  ProjectorId projector = ProjectorId::kReadModel;
  std::int64_t position = 0;  // every event up to and including this position is applied
  TimestampMs updated_at_ms = 0;
  bool operator==(const Checkpoint&) const = default;
};

enum class EntryType { kCredit, kDebit, kTransferOut, kTransferIn };

std::string_view entry_type_name(EntryType type);  // "CREDIT", "DEBIT", "TRANSFER_OUT", ...
std::optional<EntryType> entry_type_from_name(std::string_view name);
constexpr bool entry_adds(EntryType type) {
  return type == EntryType::kCredit || type == EntryType::kTransferIn;
}

// Every per-wallet row also carries the wallet's key: the position of its WalletCreated event. It
// is unique per wallet, the same for every projector and every rebuild, and an integer, so the
// per-wallet indexes sort and compare 8-byte numbers instead of ids of up to 128 characters.

// A ledger line. One per event that moves money (every event but WalletCreated), keyed by the
// event's position, so a re-projection produces the same entries with the same ids.
struct LedgerEntry {
  std::int64_t position = 0;
  std::string wallet_id;
  std::int64_t wallet_key = 0;
  std::int64_t version = 0;  // of the wallet after the event
  EntryType type = EntryType::kCredit;
  Money amount;
  Money balance_before;  // the wallet's balance before and after the event, replayed from the log
  Money balance_after;
  std::optional<std::string> description;
  std::string reference_id;                      // the transfer id, or "<walletId>:<version>"
  std::optional<std::string> related_wallet_id;  // the other wallet of a transfer
  std::string metadata;                          // the event's metadata object, JSON text
  TimestampMs created_at_ms = 0;                 // the event's occurredAt
  bool operator==(const LedgerEntry&) const = default;
};

// "00000000-0000-8000-8000-00000000007b" for position 123: a UUID-shaped (version 8, RFC variant)
// id that is a function of the position only.
std::string entry_id_for_position(std::int64_t position);
// "<walletId>:<version>": the reference of a credit or debit (one event, one reference).
std::string event_reference_id(std::string_view wallet_id, std::int64_t version);

// The ledger's own replay of one wallet and its running totals (the summary endpoint).
struct LedgerWallet {
  std::string wallet_id;
  std::int64_t wallet_key = 0;
  std::int64_t version = 0;
  Money balance;
  std::int64_t credits_minor = 0;  // CREDIT + TRANSFER_IN
  std::int64_t debits_minor = 0;   // DEBIT + TRANSFER_OUT
  std::int64_t entry_count = 0;
  bool operator==(const LedgerWallet&) const = default;
};

// One event in the per-wallet copy of the log, with the wallet's balance after it.
struct WalletEventRow {
  std::int64_t position = 0;
  std::string wallet_id;
  std::int64_t wallet_key = 0;
  std::int64_t version = 0;
  EventType type = EventType::kWalletCreated;
  std::string data;      // JSON text, as in the log
  std::string metadata;  // JSON text, as in the log
  TimestampMs occurred_at_ms = 0;
  Money balance_after;
  bool operator==(const WalletEventRow&) const = default;
};

// The per-wallet event copy's own replay of one wallet: its last event.
struct EventWallet {
  std::string wallet_id;
  std::int64_t wallet_key = 0;
  std::int64_t version = 0;
  Money balance;
  bool operator==(const EventWallet&) const = default;
};

}  // namespace wallex
