#include "bench/outcomes.h"

#include <gtest/gtest.h>

namespace wallex::bench {
namespace {

TEST(Outcomes, InsufficientFundsIsACorrectRejectionNeverAFailure) {
  EXPECT_EQ(classify_reply(OperationType::kDebit, 400, "INSUFFICIENT_FUNDS"),
            OutcomeClass::kRejected);
  EXPECT_EQ(classify_reply(OperationType::kTransfer, 400, "INSUFFICIENT_FUNDS"),
            OutcomeClass::kRejected);
  // A credit cannot lack funds: the server would be wrong.
  EXPECT_EQ(classify_reply(OperationType::kCredit, 400, "INSUFFICIENT_FUNDS"),
            OutcomeClass::kFailure);
  EXPECT_EQ(classify_reply(OperationType::kDebit, 400, "INVALID_AMOUNT"), OutcomeClass::kFailure);
}

TEST(Outcomes, SuccessStatusDependsOnTheOperation) {
  EXPECT_EQ(classify_reply(OperationType::kCredit, 201, ""), OutcomeClass::kSuccess);
  EXPECT_EQ(classify_reply(OperationType::kCreate, 201, ""), OutcomeClass::kSuccess);
  EXPECT_EQ(classify_reply(OperationType::kCredit, 200, ""), OutcomeClass::kFailure);
  EXPECT_EQ(classify_reply(OperationType::kHealth, 200, ""), OutcomeClass::kSuccess);
  EXPECT_EQ(classify_reply(OperationType::kRead, 200, ""), OutcomeClass::kSuccess);
  EXPECT_EQ(classify_reply(OperationType::kCredit, 201, kBadReplyBodyCode), OutcomeClass::kFailure);
  EXPECT_EQ(classify_reply(OperationType::kCredit, 503, "OVERLOADED"), OutcomeClass::kFailure);
  EXPECT_EQ(classify_reply(OperationType::kCredit, 0, "TIMEOUT"), OutcomeClass::kFailure);
}

TEST(Outcomes, CountsMergeAndSort) {
  OutcomeCounts a;
  a.add(OutcomeKey{OperationType::kDebit, 400, "INSUFFICIENT_FUNDS"}, OutcomeClass::kRejected);
  a.add(OutcomeKey{OperationType::kCredit, 201, ""}, OutcomeClass::kSuccess);
  OutcomeCounts b;
  b.add(OutcomeKey{OperationType::kCredit, 201, ""}, OutcomeClass::kSuccess);
  b.add(OutcomeKey{OperationType::kCredit, 0, "TIMEOUT"}, OutcomeClass::kFailure);
  a.merge(b);
  EXPECT_EQ(a.count(OutcomeClass::kSuccess), 2U);
  EXPECT_EQ(a.count(OutcomeClass::kRejected), 1U);
  EXPECT_EQ(a.count(OperationType::kCredit, OutcomeClass::kFailure), 1U);
  EXPECT_EQ(a.count(OperationType::kDebit, OutcomeClass::kFailure), 0U);
  const auto entries = a.entries();
  ASSERT_EQ(entries.size(), 3U);
  EXPECT_EQ(entries[0].key.type, OperationType::kCredit);
  EXPECT_EQ(entries[0].key.status, 0);
  EXPECT_EQ(entries[1].count, 2U);
  EXPECT_EQ(entries[2].key.type, OperationType::kDebit);
}

}  // namespace
}  // namespace wallex::bench
