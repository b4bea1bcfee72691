#include "bench/workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace wallex::bench {
namespace {

Money units(std::int64_t whole) { return Money::from_minor(whole * Money::kMinorPerUnit); }

WorkloadOptions options(Scenario scenario, Distribution distribution = Distribution::kUniform,
                        std::uint32_t wallets = 100) {
  WorkloadOptions o;
  o.scenario = scenario;
  o.distribution = distribution;
  o.wallet_count = wallets;
  o.seed = 42;
  return o;
}

bool whole_units_in(Money amount, UnitRange range) {
  return amount.minor() % Money::kMinorPerUnit == 0 &&
         amount >= units(static_cast<std::int64_t>(range.low)) &&
         amount <= units(static_cast<std::int64_t>(range.high));
}

TEST(Workload, SameSeedSameOperationsDifferentSeedDifferent) {
  const Workload a(options(Scenario::kOriginal));
  const Workload b(options(Scenario::kOriginal));
  WorkloadOptions other = options(Scenario::kOriginal);
  other.seed = 43;
  const Workload c(other);
  int differences = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const Operation x = a.operation(i);
    const Operation y = b.operation(i);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.wallet, y.wallet);
    EXPECT_EQ(x.other_wallet, y.other_wallet);
    EXPECT_EQ(x.amount, y.amount);
    const Operation z = c.operation(i);
    if (z.type != x.type || z.wallet != x.wallet || z.amount != x.amount) ++differences;
  }
  EXPECT_GT(differences, 900);
}

TEST(Workload, OriginalMixAndAmountsMatchTheOriginalLoadTest) {
  const Workload workload(options(Scenario::kOriginal));
  std::map<OperationType, int> types;
  constexpr int kOperations = 30'000;
  for (std::uint64_t i = 0; i < kOperations; ++i) {
    const Operation op = workload.operation(i);
    ++types[op.type];
    ASSERT_LT(op.wallet, 100U);
    switch (op.type) {
      case OperationType::kCredit:
        EXPECT_TRUE(whole_units_in(op.amount, kCreditUnits));
        break;
      case OperationType::kDebit:
        EXPECT_TRUE(whole_units_in(op.amount, kDebitUnits));
        break;
      case OperationType::kTransfer:
        EXPECT_TRUE(whole_units_in(op.amount, kTransferUnits));
        ASSERT_LT(op.other_wallet, 100U);
        EXPECT_NE(op.wallet, op.other_wallet);
        break;
      default:
        ADD_FAILURE() << "unexpected type " << operation_name(op.type);
    }
  }
  EXPECT_EQ(types.size(), 3U);
  for (const auto& [type, count] : types) EXPECT_NEAR(count, kOperations / 3.0, kOperations / 50.0);
}

TEST(Workload, InitialBalances) {
  const Workload original(options(Scenario::kOriginal));
  bool varied = false;
  for (std::uint32_t w = 0; w < 100; ++w) {
    EXPECT_TRUE(whole_units_in(original.initial_balance(w), kOriginalInitialUnits));
    varied = varied || original.initial_balance(w) != original.initial_balance(0);
  }
  EXPECT_TRUE(varied);
  const Workload debit(options(Scenario::kDebit));
  EXPECT_EQ(debit.initial_balance(7), units(kDefaultInitialBalanceUnits));
  WorkloadOptions fixed = options(Scenario::kOriginal);
  fixed.initial_balance = Money::from_minor(12'345);
  EXPECT_EQ(Workload(fixed).initial_balance(3), Money::from_minor(12'345));
}

TEST(Workload, SingleTypeScenarios) {
  for (const auto& [scenario, type] : std::vector<std::pair<Scenario, OperationType>>{
           {Scenario::kCredit, OperationType::kCredit},
           {Scenario::kDebit, OperationType::kDebit},
           {Scenario::kTransfer, OperationType::kTransfer},
           {Scenario::kHealth, OperationType::kHealth}}) {
    const Workload workload(options(scenario));
    for (std::uint64_t i = 0; i < 200; ++i) EXPECT_EQ(workload.operation(i).type, type);
  }
  EXPECT_FALSE(Workload(options(Scenario::kHealth)).uses_wallets());
}

TEST(Workload, MixedHasReadsToo) {
  const Workload workload(options(Scenario::kMixed));
  std::map<OperationType, int> types;
  for (std::uint64_t i = 0; i < 20'000; ++i) ++types[workload.operation(i).type];
  EXPECT_EQ(types.size(), 4U);
  EXPECT_NEAR(types[OperationType::kRead], 5000, 400);
}

TEST(Workload, HotWalletTakesPartInEveryTransferBothWays) {
  const Workload workload(options(Scenario::kTransfer, Distribution::kHot));
  int outgoing = 0;
  std::map<std::uint32_t, int> others;
  constexpr int kTransfers = 20'000;
  for (std::uint64_t i = 0; i < kTransfers; ++i) {
    const Operation op = workload.operation(i);
    ASSERT_TRUE(op.wallet == WalletPicker::kHotWallet ||
                op.other_wallet == WalletPicker::kHotWallet);
    ASSERT_NE(op.wallet, op.other_wallet);
    if (op.wallet == WalletPicker::kHotWallet) {
      ++outgoing;
      ++others[op.other_wallet];
    } else {
      ++others[op.wallet];
    }
  }
  EXPECT_NEAR(outgoing, kTransfers / 2.0, kTransfers / 20.0);
  EXPECT_EQ(others.size(), 99U);  // every other wallet is the counterpart sometimes
}

TEST(Workload, UniformSpreadsEvenly) {
  const Workload workload(options(Scenario::kCredit, Distribution::kUniform, 10));
  std::map<std::uint32_t, int> hits;
  for (std::uint64_t i = 0; i < 50'000; ++i) ++hits[workload.operation(i).wallet];
  ASSERT_EQ(hits.size(), 10U);
  for (const auto& [wallet, count] : hits) EXPECT_NEAR(count, 5000, 300);
}

TEST(Workload, ZipfianFollowsOneOverRankToTheS) {
  constexpr std::uint32_t kWallets = 1000;
  constexpr double kS = 0.99;
  const Workload workload(options(Scenario::kCredit, Distribution::kZipfian, kWallets));
  std::map<std::uint32_t, int> hits;
  constexpr int kDraws = 200'000;
  for (std::uint64_t i = 0; i < kDraws; ++i) ++hits[workload.operation(i).wallet];
  std::vector<int> counts;
  counts.reserve(hits.size());
  for (const auto& [wallet, count] : hits) counts.push_back(count);
  std::sort(counts.rbegin(), counts.rend());
  double harmonic = 0;
  for (std::uint32_t k = 1; k <= kWallets; ++k) harmonic += 1.0 / std::pow(k, kS);
  const double top_share = 1.0 / harmonic;                         // rank 1
  const double second_share = 1.0 / (std::pow(2, kS) * harmonic);  // rank 2
  EXPECT_NEAR(counts[0] / static_cast<double>(kDraws), top_share, top_share * 0.05);
  EXPECT_NEAR(counts[1] / static_cast<double>(kDraws), second_share, second_share * 0.08);
  // The hottest wallet is not simply wallet 0: ranks are shuffled over the ids.
  std::uint32_t hottest = 0;
  for (const auto& [wallet, count] : hits) {
    if (count == counts[0]) hottest = wallet;
  }
  EXPECT_NE(hottest, 0U);
}

TEST(Workload, ZipfianTransfersUseDistinctWallets) {
  const Workload workload(options(Scenario::kTransfer, Distribution::kZipfian, 2));
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const Operation op = workload.operation(i);
    EXPECT_NE(op.wallet, op.other_wallet);
  }
}

TEST(Workload, ProblemsAreReported) {
  EXPECT_TRUE(
      workload_problem(options(Scenario::kTransfer, Distribution::kUniform, 1)).has_value());
  EXPECT_TRUE(
      workload_problem(options(Scenario::kOriginal, Distribution::kUniform, 1)).has_value());
  EXPECT_FALSE(workload_problem(options(Scenario::kCredit, Distribution::kUniform, 1)).has_value());
  EXPECT_FALSE(workload_problem(options(Scenario::kHealth, Distribution::kUniform, 0)).has_value());
  WorkloadOptions zipf = options(Scenario::kCredit, Distribution::kZipfian);
  zipf.zipf_s = 0;
  EXPECT_TRUE(workload_problem(zipf).has_value());
}

TEST(Workload, NamesRoundTrip) {
  for (Scenario s : {Scenario::kOriginal, Scenario::kCredit, Scenario::kDebit, Scenario::kTransfer,
                     Scenario::kMixed, Scenario::kHealth}) {
    EXPECT_EQ(parse_scenario(scenario_name(s)), s);
  }
  for (Distribution d : {Distribution::kUniform, Distribution::kZipfian, Distribution::kHot}) {
    EXPECT_EQ(parse_distribution(distribution_name(d)), d);
  }
  EXPECT_FALSE(parse_scenario("nope").has_value());
}

}  // namespace
}  // namespace wallex::bench
