#include "domain/replay.h"

namespace wallex {

Result<Money, std::string> replay_balance(std::int64_t version, Money balance, const Event& event) {
  // Built only on a failure: this runs for every event of every projector.
  const auto where = [&event] {
    return "wallet " + event.wallet_id + " version " + std::to_string(event.version);
  };
  if (event.type == EventType::kWalletCreated) return fail(where() + ": created twice");
  if (event.version != version + 1) {
    return fail(where() + ": does not follow version " + std::to_string(version));
  }
  if (!event.amount.is_positive() || event.amount.minor() > Money::kAmountMaxMinor) {
    return fail(where() + ": invalid amount " + event.amount.to_fixed2());
  }
  const bool is_transfer = event.type == EventType::kWalletTransferInitiated ||
                           event.type == EventType::kWalletTransferCompleted;
  if (is_transfer && (event.transfer_id.empty() || event.counterparty_id.empty() ||
                      event.counterparty_id == event.wallet_id)) {
    return fail(where() + ": incomplete transfer");
  }
  const bool adds =
      event.type == EventType::kWalletCredited || event.type == EventType::kWalletTransferCompleted;
  const std::optional<Money> next = adds ? balance.plus(event.amount) : balance.minus(event.amount);
  if (!next || next->minor() < 0) {
    return fail(where() + ": balance " + balance.to_fixed2() + (adds ? " + " : " - ") +
                event.amount.to_fixed2() + " leaves [0, " +
                Money::from_minor(Money::kBalanceMaxMinor).to_fixed2() + "]");
  }
  return *next;
}

Result<WalletState, std::string> replay(const std::optional<WalletState>& state,
                                        const Event& event) {
  if (event.type == EventType::kWalletCreated) {
    if (state) return fail("wallet " + event.wallet_id + " created twice");
    if (event.version != 0) {
      return fail("wallet " + event.wallet_id + " created at version " +
                  std::to_string(event.version));
    }
    return wallex::apply(std::nullopt, event);
  }
  if (!state) {
    return fail("wallet " + event.wallet_id + " version " + std::to_string(event.version) +
                ": event before the wallet was created");
  }
  WalletState next = *state;
  if (auto applied = replay_money_event(next, event); !applied) return fail(applied.error());
  return next;
}

Status<std::string> replay_money_event(WalletState& state, const Event& event) {
  auto balance = replay_balance(state.version, state.balance, event);
  if (!balance) return fail(balance.error());
  apply_money_event(state, event);  // cannot fail any more: every check of it was made above
  return Ok{};
}

}  // namespace wallex
