// The mapping of events to read-side rows: read model, ledger entries and totals, the per-wallet
// copy of the log. Each test commits real events to a store and projects them.
#include <gtest/gtest.h>

#include <set>

#include "domain/replay.h"
#include "projection_fixture.h"

namespace wallex::testing {
namespace {

TEST(EntryIds, AreUuidShapedFunctionsOfThePosition) {
  EXPECT_EQ(entry_id_for_position(1), "00000000-0000-8000-8000-000000000001");
  EXPECT_EQ(entry_id_for_position(123), "00000000-0000-8000-8000-00000000007b");
  EXPECT_EQ(entry_id_for_position(0x123456789abcdefLL), "00000000-0000-8000-8123-456789abcdef");
  EXPECT_EQ(entry_id_for_position(INT64_MAX), "00000000-0000-8007-8fff-ffffffffffff");
}

TEST(EntryIds, EveryPositionHasItsOwnId) {
  std::set<std::string> ids;
  for (std::int64_t p : {1LL, 2LL, 15LL, 16LL, 4095LL, 4096LL, 1LL << 40, (1LL << 40) + 1}) {
    const std::string id = entry_id_for_position(p);
    EXPECT_EQ(id.size(), 36u) << id;
    EXPECT_TRUE(ids.insert(id).second) << id;
  }
}

TEST(References, OfACreditOrDebitNameTheWalletAndVersion) {
  EXPECT_EQ(event_reference_id("alice", 7), "alice:7");
  EXPECT_EQ(event_reference_id("a:1", 2), "a:1:2");  // the last colon separates the version
}

TEST(Replay, RefusesWhatCannotFollow) {
  Event created;
  created.type = EventType::kWalletCreated;
  created.wallet_id = "w";
  created.owner_id = "o";
  auto state = replay(std::nullopt, created);
  ASSERT_TRUE(state.ok());
  Event debit;
  debit.type = EventType::kWalletDebited;
  debit.wallet_id = "w";
  debit.version = 1;
  debit.amount = money("1");
  EXPECT_FALSE(replay(state.value(), debit).ok()) << "negative balance";
  Event credit = debit;
  credit.type = EventType::kWalletCredited;
  credit.version = 2;
  EXPECT_FALSE(replay(state.value(), credit).ok()) << "version gap";
  credit.version = 1;
  EXPECT_TRUE(replay(state.value(), credit).ok());
  EXPECT_FALSE(replay(state.value(), created).ok()) << "created twice";
  EXPECT_FALSE(replay(std::nullopt, credit).ok()) << "before creation";
}

class ProjectorsTest : public ProjectionFixture {
 protected:
  std::vector<LedgerEntry> entries_of(const std::string& wallet_id) {
    EntryFilter filter;
    filter.wallet_id = wallet_id;
    filter.limit = 1000;
    return read_store().find_entries(filter).value();
  }
};

TEST_F(ProjectorsTest, AnInitialBalanceIsOneCredit) {
  create("alice", "100.50", "user-1");
  catch_up();
  const std::vector<LedgerEntry> entries = entries_of("alice");
  ASSERT_EQ(entries.size(), 1u);
  const LedgerEntry& e = entries[0];
  EXPECT_EQ(e.position, 2);
  EXPECT_EQ(e.type, EntryType::kCredit);
  EXPECT_EQ(e.amount, money("100.50"));
  EXPECT_EQ(e.balance_before, money("0"));
  EXPECT_EQ(e.balance_after, money("100.50"));
  EXPECT_EQ(e.description, std::optional<std::string>("Initial balance"));
  EXPECT_EQ(e.reference_id, "alice:1");
  EXPECT_EQ(e.related_wallet_id, std::nullopt);
  EXPECT_EQ(e.created_at_ms, wallet("alice").created_at_ms);
  const auto events = log().read_events(1, 1).value();
  EXPECT_EQ(e.metadata, events.at(0).metadata_json);

  const LedgerWallet totals = read_store().ledger_wallet("alice").value().value();
  EXPECT_EQ(totals.credits_minor, 10050);
  EXPECT_EQ(totals.debits_minor, 0);
  EXPECT_EQ(totals.entry_count, 1);
  EXPECT_EQ(read_store().read_wallet("alice").value(), wallet("alice"));
  const auto copy = read_store().wallet_events("alice", 0, 10).value();
  ASSERT_EQ(copy.size(), 2u);
  EXPECT_EQ(copy[0].type, EventType::kWalletCreated);
  EXPECT_EQ(copy[0].balance_after, money("0"));
  EXPECT_EQ(copy[1].balance_after, money("100.50"));
}

TEST_F(ProjectorsTest, AWalletCreatedWithoutMoneyHasNoEntry) {
  create("bob");
  catch_up();
  EXPECT_TRUE(entries_of("bob").empty());
  EXPECT_EQ(read_store().ledger_wallet("bob").value()->entry_count, 0);
  EXPECT_EQ(read_store().read_wallet("bob").value()->version, 0);
}

TEST_F(ProjectorsTest, ATransferIsTwoEntriesThatNameEachOther) {
  create("a", "50");
  create("b", "5");
  const std::int64_t position = transfer("a", "b", "20.25", "transfer-1");
  catch_up();
  const auto out = entries_of("a").front();
  const auto in = entries_of("b").front();
  EXPECT_EQ(out.type, EntryType::kTransferOut);
  EXPECT_EQ(in.type, EntryType::kTransferIn);
  EXPECT_EQ(out.position + 1, in.position);
  EXPECT_EQ(in.position, position);
  EXPECT_EQ(out.reference_id, "transfer-1");
  EXPECT_EQ(in.reference_id, "transfer-1");
  EXPECT_EQ(out.related_wallet_id, std::optional<std::string>("b"));
  EXPECT_EQ(in.related_wallet_id, std::optional<std::string>("a"));
  EXPECT_EQ(out.amount, money("20.25"));
  EXPECT_EQ(in.amount, money("20.25"));
  EXPECT_EQ(out.balance_before, money("50"));
  EXPECT_EQ(out.balance_after, money("29.75"));
  EXPECT_EQ(in.balance_before, money("5"));
  EXPECT_EQ(in.balance_after, money("25.25"));
  EXPECT_EQ(out.description, std::optional<std::string>("Transfer to wallet b"));
  const auto both = read_store().entries_by_reference("transfer-1", 10).value();
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].position, in.position) << "newest first";
}

TEST_F(ProjectorsTest, BalancesBeforeAndAfterFollowTheEventStream) {
  create("w", "10");
  credit("w", "0.10");
  credit("w", "0.20");
  debit("w", "5.30");
  create("x", "1");
  transfer("w", "x", "5", "t");
  debit("w", "0");  // refused by decide: no event
  catch_up();
  auto entries = entries_of("w");
  std::reverse(entries.begin(), entries.end());  // oldest first
  ASSERT_EQ(entries.size(), 5u);
  for (std::size_t i = 1; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].balance_before, entries[i - 1].balance_after);
    EXPECT_EQ(entries[i].version, entries[i - 1].version + 1);
  }
  EXPECT_EQ(entries.back().balance_after, money("0"));
  EXPECT_EQ(entries[2].balance_after, money("10.30")) << "0.1 + 0.2 is exactly 0.3";
  const LedgerWallet totals = read_store().ledger_wallet("w").value().value();
  EXPECT_EQ(totals.credits_minor, 1030);
  EXPECT_EQ(totals.debits_minor, 1030);
  EXPECT_EQ(totals.entry_count, 5);
  EXPECT_EQ(totals.balance, wallet("w").balance);
  EXPECT_EQ(read_store().read_wallet("w").value(), wallet("w"));
}

TEST_F(ProjectorsTest, CreditsInTheSameMillisecondAreAllRecorded) {
  advance_clock_ = false;  // the original lost entries whose reference ids collided on a ms
  create("w");
  for (int i = 0; i < 20; ++i) credit("w", "1");
  catch_up();
  const auto entries = entries_of("w");
  ASSERT_EQ(entries.size(), 20u);
  std::set<std::string> references;
  for (const LedgerEntry& e : entries) references.insert(e.reference_id);
  EXPECT_EQ(references.size(), 20u);
  for (std::size_t i = 1; i < entries.size(); ++i) {
    EXPECT_GT(entries[i - 1].position, entries[i].position)
        << "ties broken by position, newest first";
  }
}

TEST_F(ProjectorsTest, TheEventCopyIsTheLogVerbatim) {
  workload(5, 60);
  catch_up();
  const auto logged = log().read_events(0, 10'000).value();
  const auto copy = read_store().scan_wallet_events(0, 10'000).value();
  ASSERT_EQ(logged.size(), copy.size());
  for (std::size_t i = 0; i < logged.size(); ++i) {
    EXPECT_EQ(copy[i].position, logged[i].position);
    EXPECT_EQ(copy[i].wallet_id, logged[i].event.wallet_id);
    EXPECT_EQ(copy[i].version, logged[i].event.version);
    EXPECT_EQ(copy[i].data, logged[i].data_json);
    EXPECT_EQ(copy[i].metadata, logged[i].metadata_json);
  }
}

TEST_F(ProjectorsTest, EveryMoneyEventHasExactlyItsEntry) {
  workload(8, 200);
  catch_up();
  const auto logged = log().read_events(0, 10'000).value();
  const auto entries = read_store().scan_entries(0, 10'000).value();
  std::size_t next = 0;
  for (const LoggedEvent& event : logged) {
    if (event.event.type == EventType::kWalletCreated) continue;
    ASSERT_LT(next, entries.size());
    EXPECT_EQ(entries[next].position, event.position);
    ++next;
  }
  EXPECT_EQ(next, entries.size());
  for (const auto& [id, state] : wallets_) {
    EXPECT_EQ(read_store().read_wallet(id).value(), state);
    EXPECT_EQ(read_store().ledger_wallet(id).value()->balance, state.balance);
  }
}

}  // namespace
}  // namespace wallex::testing
