#include "domain/money.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace wallex {
namespace {

std::int64_t parse_minor(std::string_view text) {
  auto money = Money::parse(text);
  EXPECT_TRUE(money.ok()) << text;
  return money ? money.value().minor() : -1;
}

MoneyParseError parse_error(std::string_view text) {
  auto money = Money::parse(text);
  EXPECT_FALSE(money.ok()) << text;
  return money ? MoneyParseError::kNotANumber : money.error();
}

TEST(MoneyParse, AcceptsDecimalText) {
  EXPECT_EQ(parse_minor("0"), 0);
  EXPECT_EQ(parse_minor("100"), 10000);
  EXPECT_EQ(parse_minor("100.5"), 10050);
  EXPECT_EQ(parse_minor("100.50"), 10050);
  EXPECT_EQ(parse_minor("0.01"), 1);
  EXPECT_EQ(parse_minor("0.1"), 10);
  EXPECT_EQ(parse_minor("-12.34"), -1234);
  EXPECT_EQ(parse_minor("10.500"), 1050);  // trailing zeros do not add precision
}

TEST(MoneyParse, AcceptsExponents) {
  EXPECT_EQ(parse_minor("1e2"), 10000);
  EXPECT_EQ(parse_minor("1.25E1"), 1250);
  EXPECT_EQ(parse_minor("125e-2"), 125);
  EXPECT_EQ(parse_minor("1e-2"), 1);
  EXPECT_EQ(parse_minor("0e400"), 0);
  EXPECT_EQ(parse_minor("1e+1"), 1000);
}

TEST(MoneyParse, RejectsNonNumbers) {
  for (const char* text : {"", "-", "abc", "NaN", "Infinity", "-Infinity", "1.", ".5", "01", "1.2.3",
                           "1e", "1e+", " 1", "1 ", "+1", "0x10", "1,5", "١"}) {
    EXPECT_EQ(parse_error(text), MoneyParseError::kNotANumber) << text;
  }
}

TEST(MoneyParse, RejectsMoreThanTwoDecimals) {
  EXPECT_EQ(parse_error("10.005"), MoneyParseError::kTooManyDecimals);
  EXPECT_EQ(parse_error("0.001"), MoneyParseError::kTooManyDecimals);
  EXPECT_EQ(parse_error("1e-3"), MoneyParseError::kTooManyDecimals);
  EXPECT_EQ(parse_error("1.23456e2"), MoneyParseError::kTooManyDecimals);
  EXPECT_EQ(parse_minor("1.2345e2"), 12345);
}

TEST(MoneyParse, RejectsOutOfRange) {
  EXPECT_EQ(parse_error("1e400"), MoneyParseError::kOutOfRange);
  EXPECT_EQ(parse_error("10000000000.01"), MoneyParseError::kOutOfRange);
  EXPECT_EQ(parse_error("99999999999999999999999999"), MoneyParseError::kOutOfRange);
  EXPECT_EQ(parse_minor("10000000000"), Money::kBalanceMaxMinor);
}

TEST(MoneyFormat, JsonNumberIsShortest) {
  EXPECT_EQ(Money::from_minor(13050).to_json_number(), "130.5");
  EXPECT_EQ(Money::from_minor(30).to_json_number(), "0.3");
  EXPECT_EQ(Money::from_minor(10000).to_json_number(), "100");
  EXPECT_EQ(Money::from_minor(1).to_json_number(), "0.01");
  EXPECT_EQ(Money::from_minor(0).to_json_number(), "0");
  EXPECT_EQ(Money::from_minor(-150).to_json_number(), "-1.5");
}

TEST(MoneyFormat, Fixed2AlwaysHasTwoDecimals) {
  EXPECT_EQ(Money::from_minor(10000).to_fixed2(), "100.00");
  EXPECT_EQ(Money::from_minor(5).to_fixed2(), "0.05");
  EXPECT_EQ(Money::from_minor(-5).to_fixed2(), "-0.05");
}

// The texts are written into a buffer of their own: the widest values fit, whatever their sign.
TEST(MoneyFormat, TheWidestValuesAreWrittenWhole) {
  EXPECT_EQ(Money::from_minor(Money::kBalanceMaxMinor).to_fixed2(), "10000000000.00");
  EXPECT_EQ(Money::from_minor(-Money::kBalanceMaxMinor).to_json_number(), "-10000000000");
  EXPECT_EQ(Money::from_minor(INT64_MAX).fixed2_text().view(), "92233720368547758.07");
  EXPECT_EQ(Money::from_minor(INT64_MIN).fixed2_text().view(), "-92233720368547758.08");
  EXPECT_EQ(Money::from_minor(INT64_MIN + 8).json_number_text().view(), "-92233720368547758");
  EXPECT_EQ(Money::from_minor(-10).json_number_text().view(), "-0.1");
}

TEST(MoneyArithmetic, PointOnePlusPointTwoIsPointThree) {
  const Money sum = *Money::parse("0.1").value().plus(Money::parse("0.2").value());
  EXPECT_EQ(sum.to_json_number(), "0.3");
}

TEST(MoneyArithmetic, RefusesToLeaveTheBalanceRange) {
  const Money max = Money::from_minor(Money::kBalanceMaxMinor);
  EXPECT_FALSE(max.plus(Money::from_minor(1)).has_value());
  EXPECT_FALSE(Money::from_minor(-Money::kBalanceMaxMinor).minus(Money::from_minor(1)).has_value());
  EXPECT_EQ(max.minus(max)->minor(), 0);
}

Money arbitrary_money() {
  return Money::from_minor(*rc::gen::inRange(-Money::kBalanceMaxMinor, Money::kBalanceMaxMinor + 1));
}

RC_GTEST_PROP(MoneyProperties, ParseOfJsonNumberIsIdentity, ()) {
  const Money m = arbitrary_money();
  const auto parsed = Money::parse(m.to_json_number());
  RC_ASSERT(parsed.ok());
  RC_ASSERT(parsed.value() == m);
}

RC_GTEST_PROP(MoneyProperties, ParseOfFixed2IsIdentity, ()) {
  const Money m = arbitrary_money();
  const auto parsed = Money::parse(m.to_fixed2());
  RC_ASSERT(parsed.ok());
  RC_ASSERT(parsed.value() == m);
}

RC_GTEST_PROP(MoneyProperties, ExponentSpellingsAgree, ()) {
  // n * 10^-2 written as "<n>e-2" is the same amount as its fixed form.
  const auto minor = *rc::gen::inRange<std::int64_t>(0, Money::kBalanceMaxMinor + 1);
  const auto parsed = Money::parse(std::to_string(minor) + "e-2");
  RC_ASSERT(parsed.ok());
  RC_ASSERT(parsed.value().minor() == minor);
}

RC_GTEST_PROP(MoneyProperties, PlusThenMinusIsIdentity, ()) {
  const auto a = Money::from_minor(*rc::gen::inRange<std::int64_t>(0, Money::kBalanceMaxMinor / 2));
  const auto b = Money::from_minor(*rc::gen::inRange<std::int64_t>(0, Money::kBalanceMaxMinor / 2));
  RC_ASSERT(*a.plus(b)->minus(b) == a);
}

}  // namespace
}  // namespace wallex
