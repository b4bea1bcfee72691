// Replay: the one definition of "what an event does to a wallet" for code that reads the log
// instead of deciding it, with every invariant checked and reported as a value. The writer's
// domain::apply stops the process on a broken invariant (it decided the event itself); a reader
// of the log reports a bad event instead: the projectors get stuck (and verify fails), and the
// SQLite store refuses to open when the events after its write-model snapshot do not replay.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "domain/wallet.h"

namespace wallex {

// The balance after a money event applied to a wallet at (version, balance): checks that the
// event continues the wallet's versions, that the amount is a valid amount and that the balance
// stays within [0, kBalanceMax].
Result<Money, std::string> replay_balance(std::int64_t version, Money balance, const Event& event);

// The state after `event` (nullopt before WalletCreated), or why the event cannot follow.
Result<WalletState, std::string> replay(const std::optional<WalletState>& state,
                                        const Event& event);

// The same for an event that moves money (not WalletCreated), applied to `state` in place; the
// caller guarantees that `state` is the event's wallet. `state` is unchanged on a failure.
Status<std::string> replay_money_event(WalletState& state, const Event& event);

}  // namespace wallex
