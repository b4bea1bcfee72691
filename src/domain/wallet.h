// The wallet aggregate: its state, its events, and the pure decide/apply functions.
//
// decide(command, current state) -> events or a DomainError; apply(state, event) -> next state.
// Nothing here does I/O or reads a clock: the caller passes the time and any invented ids, so the
// same inputs always give the same outputs (the simulation and the unit tests rely on it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "domain/errors.h"
#include "domain/money.h"

namespace wallex {

inline constexpr std::size_t kDescriptionLengthMax = 500;  // bytes of UTF-8
inline constexpr std::string_view kInitialBalanceDescription = "Initial balance";

struct WalletState {
  std::string id;
  std::string owner_id;
  Money balance;
  std::int64_t version = -1;  // 0-based revision of the wallet's last event
  TimestampMs created_at_ms = 0;
  TimestampMs updated_at_ms = 0;
  bool operator==(const WalletState&) const = default;
};

enum class EventType {
  kWalletCreated,
  kWalletCredited,
  kWalletDebited,
  kWalletTransferInitiated,  // on the source of a transfer
  kWalletTransferCompleted,  // on the destination, always committed with the Initiated event
};

std::string_view event_type_name(EventType type);
std::optional<EventType> event_type_from_name(std::string_view name);

struct Event {
  EventType type = EventType::kWalletCreated;
  std::string wallet_id;
  std::int64_t version = 0;
  TimestampMs occurred_at_ms = 0;
  std::string owner_id;                    // WalletCreated
  Money amount;                            // every type but WalletCreated
  std::optional<std::string> description;  // credited, debited, transfer pair
  std::string transfer_id;                 // transfer pair
  std::string counterparty_id;             // Initiated: toWalletId; Completed: fromWalletId
  bool operator==(const Event&) const = default;
};

struct CreateWallet {
  std::string wallet_id;
  std::string owner_id;
  Money initial_balance;
};

struct CreditWallet {
  std::string wallet_id;
  Money amount;
  std::optional<std::string> description;
};

struct DebitWallet {
  std::string wallet_id;
  Money amount;
  std::optional<std::string> description;
};

struct TransferMoney {
  std::string from_wallet_id;
  std::string to_wallet_id;
  Money amount;
  std::optional<std::string> description;
  std::string transfer_id;  // invented by the caller before deciding
};

using Command = std::variant<CreateWallet, CreditWallet, DebitWallet, TransferMoney>;

// Looks a wallet up by id; nullptr when it does not exist.
using WalletLookup = std::function<const WalletState*(std::string_view)>;

// The events a command produces, or why it is refused. The events carry contiguous versions
// following the current state of each wallet they touch.
Result<std::vector<Event>, DomainError> decide(const Command& command, const WalletLookup& lookup,
                                               TimestampMs now_ms);

// Applies one event to the state of its wallet (nullopt before WalletCreated). Checks that the
// event's version follows the state's and that the balance stays within limits: a violation is a
// broken invariant and stops the process.
WalletState apply(const std::optional<WalletState>& state, const Event& event);
// The same for an event that moves money, applied to `state` in place (no copy of its ids). The
// caller guarantees that `state` is the event's wallet (apply() checks it).
void apply_money_event(WalletState& state, const Event& event);

}  // namespace wallex
