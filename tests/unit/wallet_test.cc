#include "domain/wallet.h"

#include <gtest/gtest.h>

#include <map>

namespace wallex {
namespace {

Money money(std::string_view text) { return Money::parse(text).value(); }

// A tiny in-memory world: decide, then apply every event, as the service does.
class World {
 public:
  Result<std::vector<Event>, DomainError> run(Command command, TimestampMs now_ms = 1000) {
    auto decision = decide(command, [this](std::string_view id) -> const WalletState* {
      const auto it = wallets_.find(std::string(id));
      return it == wallets_.end() ? nullptr : &it->second;
    }, now_ms);
    if (decision) {
      for (const Event& event : decision.value()) {
        const auto it = wallets_.find(event.wallet_id);
        std::optional<WalletState> current;
        if (it != wallets_.end()) current = it->second;
        wallets_.insert_or_assign(event.wallet_id, wallex::apply(current, event));
      }
    }
    return decision;
  }
  const WalletState& wallet(const std::string& id) const { return wallets_.at(id); }

 private:
  std::map<std::string, WalletState> wallets_;
};

ErrorCode error_of(const Result<std::vector<Event>, DomainError>& result) {
  EXPECT_FALSE(result.ok());
  return result ? ErrorCode::kInternalError : result.error().code;
}

TEST(Wallet, CreateWithoutMoneyIsVersionZero) {
  World world;
  auto events = world.run(CreateWallet{"w", "o", Money()}, 5);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events.value().size(), 1u);
  EXPECT_EQ(events.value()[0].type, EventType::kWalletCreated);
  EXPECT_EQ(world.wallet("w").version, 0);
  EXPECT_EQ(world.wallet("w").balance.minor(), 0);
  EXPECT_EQ(world.wallet("w").created_at_ms, 5);
}

TEST(Wallet, InitialBalanceIsASeparateCreditAtVersionOne) {
  World world;
  auto events = world.run(CreateWallet{"w", "o", money("100")});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events.value().size(), 2u);
  EXPECT_EQ(events.value()[1].type, EventType::kWalletCredited);
  EXPECT_EQ(events.value()[1].description, "Initial balance");
  EXPECT_EQ(events.value()[1].version, 1);
  EXPECT_EQ(world.wallet("w").version, 1);
  EXPECT_EQ(world.wallet("w").balance, money("100"));
}

TEST(Wallet, VersionArithmeticOfTheOriginalSpec) {
  // The original's own spec: create with 100, credit 50, debit 20 -> balance 130, version 3.
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"wallet-1", "owner-1", money("100")}).ok());
  ASSERT_TRUE(world.run(CreditWallet{"wallet-1", money("50"), "bonus deposit"}).ok());
  ASSERT_TRUE(world.run(DebitWallet{"wallet-1", money("20"), "purchase"}).ok());
  EXPECT_EQ(world.wallet("wallet-1").balance, money("130"));
  EXPECT_EQ(world.wallet("wallet-1").version, 3);
}

TEST(Wallet, DuplicateCreateIsRefused) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"w", "o", Money()}).ok());
  EXPECT_EQ(error_of(world.run(CreateWallet{"w", "o", Money()})), ErrorCode::kWalletAlreadyExists);
}

TEST(Wallet, AmountsMustBePositiveAndBounded) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"w", "o", money("10")}).ok());
  EXPECT_EQ(error_of(world.run(CreditWallet{"w", Money(), {}})), ErrorCode::kInvalidAmount);
  EXPECT_EQ(error_of(world.run(DebitWallet{"w", money("-1"), {}})), ErrorCode::kInvalidAmount);
  EXPECT_EQ(error_of(world.run(CreditWallet{"w", money("1000000000.01"), {}})),
            ErrorCode::kAmountTooLarge);
  EXPECT_EQ(error_of(world.run(CreateWallet{"x", "o", money("-5")})), ErrorCode::kInvalidAmount);
  EXPECT_EQ(world.wallet("w").version, 1);
}

TEST(Wallet, NoOverdraftButEqualIsAllowed) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"w", "o", money("40")}).ok());
  EXPECT_EQ(error_of(world.run(DebitWallet{"w", money("50"), {}})), ErrorCode::kInsufficientFunds);
  ASSERT_TRUE(world.run(DebitWallet{"w", money("40"), {}}).ok());
  EXPECT_EQ(world.wallet("w").balance.minor(), 0);
}

TEST(Wallet, UnknownWalletIsNotFound) {
  World world;
  EXPECT_EQ(error_of(world.run(CreditWallet{"nope", money("1"), {}})), ErrorCode::kWalletNotFound);
  EXPECT_EQ(error_of(world.run(DebitWallet{"nope", money("1"), {}})), ErrorCode::kWalletNotFound);
}

TEST(Wallet, BalanceLimitIsEnforced) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"w", "o", money("1000000000")}).ok());
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(world.run(CreditWallet{"w", money("1000000000"), {}}).ok());
  EXPECT_EQ(world.wallet("w").balance.minor(), Money::kBalanceMaxMinor);
  EXPECT_EQ(error_of(world.run(CreditWallet{"w", money("0.01"), {}})),
            ErrorCode::kBalanceLimitExceeded);
}

TEST(Wallet, TransferIsOnePairOfEventsSharingAnId) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"a", "o", money("100")}).ok());
  ASSERT_TRUE(world.run(CreateWallet{"b", "o", Money()}).ok());
  auto events = world.run(TransferMoney{"a", "b", money("30.5"), std::nullopt, "t-1"});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events.value().size(), 2u);
  const Event& out = events.value()[0];
  const Event& in = events.value()[1];
  EXPECT_EQ(out.type, EventType::kWalletTransferInitiated);
  EXPECT_EQ(in.type, EventType::kWalletTransferCompleted);
  EXPECT_EQ(out.transfer_id, "t-1");
  EXPECT_EQ(in.transfer_id, "t-1");
  EXPECT_EQ(out.counterparty_id, "b");
  EXPECT_EQ(in.counterparty_id, "a");
  EXPECT_EQ(out.description, "Transfer to wallet b");
  EXPECT_EQ(in.description, "Transfer from wallet a");
  EXPECT_EQ(world.wallet("a").balance, money("69.5"));
  EXPECT_EQ(world.wallet("b").balance, money("30.5"));
  EXPECT_EQ(world.wallet("a").version, 2);
  EXPECT_EQ(world.wallet("b").version, 1);
}

TEST(Wallet, RefusedTransfersChangeNothing) {
  World world;
  ASSERT_TRUE(world.run(CreateWallet{"a", "o", money("10")}).ok());
  ASSERT_TRUE(world.run(CreateWallet{"b", "o", Money()}).ok());
  EXPECT_EQ(error_of(world.run(TransferMoney{"a", "a", money("1"), {}, "t"})),
            ErrorCode::kSameWalletTransfer);
  EXPECT_EQ(error_of(world.run(TransferMoney{"a", "zz", money("1"), {}, "t"})),
            ErrorCode::kWalletNotFound);
  EXPECT_EQ(error_of(world.run(TransferMoney{"zz", "a", money("1"), {}, "t"})),
            ErrorCode::kWalletNotFound);
  EXPECT_EQ(error_of(world.run(TransferMoney{"a", "b", money("10.01"), {}, "t"})),
            ErrorCode::kInsufficientFunds);
  EXPECT_EQ(world.wallet("a").balance, money("10"));
  EXPECT_EQ(world.wallet("a").version, 1);
  EXPECT_EQ(world.wallet("b").version, 0);
}

TEST(WalletDeathTest, ApplyingAnOutOfOrderEventStops) {
  WalletState state{"w", "o", money("5"), 3, 0, 0};
  Event event;
  event.type = EventType::kWalletCredited;
  event.wallet_id = "w";
  event.version = 5;  // skips 4
  event.amount = money("1");
  EXPECT_DEATH(wallex::apply(state, event), "WALLEX_CHECK");
}

TEST(Wallet, EventTypeNamesRoundTrip) {
  for (EventType type : {EventType::kWalletCreated, EventType::kWalletCredited,
                         EventType::kWalletDebited, EventType::kWalletTransferInitiated,
                         EventType::kWalletTransferCompleted}) {
    EXPECT_EQ(event_type_from_name(event_type_name(type)), type);
  }
  EXPECT_FALSE(event_type_from_name("WalletExploded").has_value());
}

}  // namespace
}  // namespace wallex
