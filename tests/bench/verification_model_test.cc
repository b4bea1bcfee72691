#include "bench/verification_model.h"

#include <gtest/gtest.h>

namespace wallex::bench {
namespace {

Money units(std::int64_t whole) { return Money::from_minor(whole * Money::kMinorPerUnit); }

WalletSnapshot snap(std::uint32_t wallet, std::int64_t balance_units, std::int64_t version) {
  return WalletSnapshot{"w" + std::to_string(wallet), units(balance_units), version};
}

TransferReply transfer_reply(WalletSnapshot from, WalletSnapshot to) {
  return TransferReply{std::move(from), std::move(to), "t"};
}

// Two wallets: #0 created with 100 (version 1), #1 created empty (version 0).
// Then: credit #0 50 -> 150 v2; transfer #0 -> #1 30 -> 120 v3 / 30 v1; debit #1 10 -> 20 v2.
struct Scripted {
  VerificationModel model{{units(100), units(0)}};
  std::vector<std::optional<WalletSnapshot>> read_back{snap(0, 120, 3), snap(1, 20, 2)};

  // Records the run across two "threads", in an order different from version order, as
  // concurrent connections would.
  void record_all() {
    EffectRecorder a;
    EffectRecorder b;
    a.created(0, units(100), snap(0, 100, 1));
    b.created(1, units(0), snap(1, 0, 0));
    b.debited(1, units(10), snap(1, 20, 2));
    a.transferred(0, 1, units(30), transfer_reply(snap(0, 120, 3), snap(1, 30, 1)));
    b.credited(0, units(50), snap(0, 150, 2));
    model.absorb(a);
    model.absorb(b);
  }
};

TEST(VerificationModel, ConsistentRunPasses) {
  Scripted run;
  run.record_all();
  const VerificationReport report = run.model.verify(run.read_back, {});
  EXPECT_TRUE(report.passed()) << (report.problems.empty() ? "" : report.problems.front());
  EXPECT_EQ(report.wallets_checked, 2U);
  EXPECT_EQ(report.wallets_exact, 2U);
  EXPECT_EQ(report.observations, 6U);
  EXPECT_EQ(report.initial_total, units(100));
  EXPECT_EQ(report.credits_total, units(50));
  EXPECT_EQ(report.debits_total, units(10));
  EXPECT_EQ(report.transfers_total, units(30));
  EXPECT_EQ(report.expected_total, units(140));
  EXPECT_EQ(report.actual_total, units(140));
}

TEST(VerificationModel, WrongFinalBalanceFails) {
  Scripted run;
  run.record_all();
  run.read_back[1] = snap(1, 21, 2);
  const VerificationReport report = run.model.verify(run.read_back, {});
  EXPECT_FALSE(report.passed());
  EXPECT_EQ(report.wallets_exact, 1U);
  EXPECT_GE(report.problem_count, 2U);  // the wallet and the total
}

TEST(VerificationModel, WrongFinalVersionFails) {
  Scripted run;
  run.record_all();
  run.read_back[0] = snap(0, 120, 4);  // an event the bench never had acknowledged
  EXPECT_FALSE(run.model.verify(run.read_back, {}).passed());
}

TEST(VerificationModel, MissingWalletFails) {
  Scripted run;
  run.record_all();
  run.read_back[0].reset();
  EXPECT_FALSE(run.model.verify(run.read_back, {}).passed());
}

TEST(VerificationModel, ReadProblemsFail) {
  Scripted run;
  run.record_all();
  EXPECT_FALSE(run.model.verify(run.read_back, {"read wallet #0: TIMEOUT"}).passed());
}

TEST(VerificationModel, VersionGivenTwiceFailsEvenWhenSumsMatch) {
  // A lost update the final state hides: two credits of 10 both acknowledged at version 1 with
  // balance 10, while the server (wrongly) ends at balance 20, version 2.
  VerificationModel model({units(0)});
  EffectRecorder recorder;
  recorder.created(0, units(0), snap(0, 0, 0));
  recorder.credited(0, units(10), snap(0, 10, 1));
  recorder.credited(0, units(10), snap(0, 10, 1));
  model.absorb(recorder);
  const VerificationReport report = model.verify({snap(0, 20, 2)}, {});
  EXPECT_EQ(report.wallets_exact, 1U);  // the sums alone would pass
  EXPECT_FALSE(report.passed());
}

TEST(VerificationModel, BalanceThatDoesNotFollowFromThePreviousFails) {
  VerificationModel model({units(100)});
  EffectRecorder recorder;
  recorder.created(0, units(100), snap(0, 100, 1));
  recorder.debited(0, units(10), snap(0, 95, 2));  // should be 90
  recorder.credited(0, units(5), snap(0, 95, 3));
  model.absorb(recorder);
  EXPECT_FALSE(model.verify({snap(0, 95, 3)}, {}).passed());
}

TEST(VerificationModel, CreationReplyMustMatchTheRequest) {
  VerificationModel model({units(100)});
  EffectRecorder recorder;
  recorder.created(0, units(100), snap(0, 100, 0));  // version must be 1 with money
  model.absorb(recorder);
  EXPECT_FALSE(model.verify({snap(0, 100, 0)}, {}).passed());
}

TEST(VerificationModel, UnknownOutcomeMakesTheRunUnverifiable) {
  Scripted run;
  run.record_all();
  EffectRecorder lost;
  Operation op;
  op.type = OperationType::kCredit;
  op.wallet = 1;
  op.amount = units(5);
  lost.outcome_unknown(op);
  run.model.absorb(lost);
  const VerificationReport report = run.model.verify(run.read_back, {});
  EXPECT_EQ(report.wallets_uncertain, 1U);
  EXPECT_FALSE(report.passed());
}

TEST(VerificationModel, ExactDecimalMoney) {
  // 0.1 + 0.2 must be exactly 0.3: the model never uses floating point.
  VerificationModel model({Money::from_minor(10)});
  EffectRecorder recorder;
  recorder.created(0, Money::from_minor(10), WalletSnapshot{"w0", Money::from_minor(10), 1});
  recorder.credited(0, Money::from_minor(20), WalletSnapshot{"w0", Money::from_minor(30), 2});
  model.absorb(recorder);
  auto read = Money::parse("0.3");
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(model.verify({WalletSnapshot{"w0", read.value(), 2}}, {}).passed());
}

TEST(VerificationModel, NotCreatedWalletMustNotExist) {
  VerificationModel model({units(5)});
  const VerificationReport absent = model.verify({std::nullopt}, {});
  EXPECT_TRUE(absent.passed());
  EXPECT_FALSE(model.verify({snap(0, 5, 1)}, {}).passed());
}

}  // namespace
}  // namespace wallex::bench
