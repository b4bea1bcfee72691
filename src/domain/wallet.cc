#include "domain/wallet.h"

#include <string>

namespace wallex {
namespace {

std::optional<DomainError> check_amount(Money amount) {
  if (!amount.is_positive()) {
    return DomainError{ErrorCode::kInvalidAmount,
                       "Amount must be greater than zero. Received: " + amount.to_json_number()};
  }
  if (amount.minor() > Money::kAmountMaxMinor) {
    return DomainError{ErrorCode::kAmountTooLarge,
                       "Amount must not exceed " +
                           Money::from_minor(Money::kAmountMaxMinor).to_json_number() +
                           ". Received: " + amount.to_json_number()};
  }
  return std::nullopt;
}

DomainError not_found(std::string_view id) {
  return {ErrorCode::kWalletNotFound, "Wallet " + std::string(id) + " was not found"};
}

DomainError insufficient_funds(const WalletState& wallet, Money amount) {
  return {ErrorCode::kInsufficientFunds, "Wallet " + wallet.id + " has insufficient funds: balance " +
                                             wallet.balance.to_json_number() +
                                             ", attempted debit " + amount.to_json_number()};
}

DomainError balance_limit(const WalletState& wallet, Money amount) {
  return {ErrorCode::kBalanceLimitExceeded,
          "Wallet " + wallet.id + " would exceed the balance limit of " +
              Money::from_minor(Money::kBalanceMaxMinor).to_json_number() + ": balance " +
              wallet.balance.to_json_number() + ", attempted credit " + amount.to_json_number()};
}

Event money_event(EventType type, const WalletState& wallet, Money amount,
                  std::optional<std::string> description, TimestampMs now_ms) {
  Event event;
  event.type = type;
  event.wallet_id = wallet.id;
  event.version = wallet.version + 1;
  event.occurred_at_ms = now_ms;
  event.amount = amount;
  event.description = std::move(description);
  return event;
}

// The events of one decision, moved in (a braced list would copy each event once more).
template <typename... Events>
std::vector<Event> events_of(Events&&... events) {
  std::vector<Event> list;
  list.reserve(sizeof...(events));
  (list.push_back(std::forward<Events>(events)), ...);
  return list;
}

Result<std::vector<Event>, DomainError> decide_create(const CreateWallet& command,
                                                      const WalletLookup& lookup,
                                                      TimestampMs now_ms) {
  if (command.initial_balance.minor() < 0) {
    return fail(DomainError{ErrorCode::kInvalidAmount,
                            "Initial balance must not be negative. Received: " +
                                command.initial_balance.to_json_number()});
  }
  if (command.initial_balance.minor() > Money::kAmountMaxMinor) {
    return fail(*check_amount(command.initial_balance));
  }
  if (lookup(command.wallet_id) != nullptr) {
    return fail(DomainError{ErrorCode::kWalletAlreadyExists,
                            "Wallet " + command.wallet_id + " already exists"});
  }
  std::vector<Event> events;
  Event created;
  created.type = EventType::kWalletCreated;
  created.wallet_id = command.wallet_id;
  created.version = 0;
  created.occurred_at_ms = now_ms;
  created.owner_id = command.owner_id;
  events.push_back(created);
  if (command.initial_balance.is_positive()) {
    const WalletState fresh = wallex::apply(std::nullopt, created);
    events.push_back(money_event(EventType::kWalletCredited, fresh, command.initial_balance,
                                 std::string(kInitialBalanceDescription), now_ms));
  }
  return events;
}

Result<std::vector<Event>, DomainError> decide_credit(const CreditWallet& command,
                                                      const WalletLookup& lookup,
                                                      TimestampMs now_ms) {
  if (auto error = check_amount(command.amount)) return fail(std::move(*error));
  const WalletState* wallet = lookup(command.wallet_id);
  if (wallet == nullptr) return fail(not_found(command.wallet_id));
  if (!wallet->balance.plus(command.amount)) return fail(balance_limit(*wallet, command.amount));
  return events_of(money_event(EventType::kWalletCredited, *wallet, command.amount,
                               command.description, now_ms));
}

Result<std::vector<Event>, DomainError> decide_debit(const DebitWallet& command,
                                                     const WalletLookup& lookup,
                                                     TimestampMs now_ms) {
  if (auto error = check_amount(command.amount)) return fail(std::move(*error));
  const WalletState* wallet = lookup(command.wallet_id);
  if (wallet == nullptr) return fail(not_found(command.wallet_id));
  if (command.amount > wallet->balance) return fail(insufficient_funds(*wallet, command.amount));
  return events_of(
      money_event(EventType::kWalletDebited, *wallet, command.amount, command.description, now_ms));
}

Result<std::vector<Event>, DomainError> decide_transfer(const TransferMoney& command,
                                                        const WalletLookup& lookup,
                                                        TimestampMs now_ms) {
  if (command.from_wallet_id == command.to_wallet_id) {
    return fail(DomainError{ErrorCode::kSameWalletTransfer, "Cannot transfer to the same wallet"});
  }
  if (auto error = check_amount(command.amount)) return fail(std::move(*error));
  const WalletState* from = lookup(command.from_wallet_id);
  if (from == nullptr) return fail(not_found(command.from_wallet_id));
  const WalletState* to = lookup(command.to_wallet_id);
  if (to == nullptr) return fail(not_found(command.to_wallet_id));
  if (command.amount > from->balance) return fail(insufficient_funds(*from, command.amount));
  if (!to->balance.plus(command.amount)) return fail(balance_limit(*to, command.amount));

  Event out = money_event(
      EventType::kWalletTransferInitiated, *from, command.amount,
      command.description ? *command.description : "Transfer to wallet " + to->id, now_ms);
  out.transfer_id = command.transfer_id;
  out.counterparty_id = to->id;
  Event in = money_event(
      EventType::kWalletTransferCompleted, *to, command.amount,
      command.description ? *command.description : "Transfer from wallet " + from->id, now_ms);
  in.transfer_id = command.transfer_id;
  in.counterparty_id = from->id;
  return events_of(std::move(out), std::move(in));
}

}  // namespace

std::string_view event_type_name(EventType type) {
  switch (type) {
    case EventType::kWalletCreated: return "WalletCreated";
    case EventType::kWalletCredited: return "WalletCredited";
    case EventType::kWalletDebited: return "WalletDebited";
    case EventType::kWalletTransferInitiated: return "WalletTransferInitiated";
    case EventType::kWalletTransferCompleted: return "WalletTransferCompleted";
  }
  return "Unknown";
}

std::optional<EventType> event_type_from_name(std::string_view name) {
  for (const EventType type :
       {EventType::kWalletCreated, EventType::kWalletCredited, EventType::kWalletDebited,
        EventType::kWalletTransferInitiated, EventType::kWalletTransferCompleted}) {
    if (event_type_name(type) == name) return type;
  }
  return std::nullopt;
}

Result<std::vector<Event>, DomainError> decide(const Command& command, const WalletLookup& lookup,
                                               TimestampMs now_ms) {
  return std::visit(
      [&](const auto& c) -> Result<std::vector<Event>, DomainError> {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateWallet>) return decide_create(c, lookup, now_ms);
        if constexpr (std::is_same_v<T, CreditWallet>) return decide_credit(c, lookup, now_ms);
        if constexpr (std::is_same_v<T, DebitWallet>) return decide_debit(c, lookup, now_ms);
        if constexpr (std::is_same_v<T, TransferMoney>) return decide_transfer(c, lookup, now_ms);
      },
      command);
}

WalletState apply(const std::optional<WalletState>& state, const Event& event) {
  if (event.type == EventType::kWalletCreated) {
    WALLEX_CHECK(!state.has_value());
    WALLEX_CHECK(event.version == 0);
    return WalletState{event.wallet_id, event.owner_id, Money(), 0, event.occurred_at_ms,
                       event.occurred_at_ms};
  }
  WALLEX_CHECK(state.has_value());
  WALLEX_CHECK(state->id == event.wallet_id);
  WalletState next = *state;
  apply_money_event(next, event);
  return next;
}

void apply_money_event(WalletState& state, const Event& event) {
  WALLEX_CHECK(event.type != EventType::kWalletCreated);
  WALLEX_CHECK(event.version == state.version + 1);
  WALLEX_CHECK(event.amount.is_positive());
  const bool adds = event.type == EventType::kWalletCredited ||
                    event.type == EventType::kWalletTransferCompleted;
  const std::optional<Money> balance =
      adds ? state.balance.plus(event.amount) : state.balance.minus(event.amount);
  WALLEX_CHECK(balance.has_value());
  WALLEX_CHECK(balance->minor() >= 0);
  state.balance = *balance;
  state.version = event.version;
  state.updated_at_ms = event.occurred_at_ms;
}

}  // namespace wallex
