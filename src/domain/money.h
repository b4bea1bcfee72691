// Money: an exact amount in integer minor units (cents). No floating point is used anywhere:
// amounts are converted from their decimal text and formatted back to decimal text.
//
// Limits (documented in docs/http-api.md):
//   kAmountMax  = 1,000,000,000.00 — the largest amount of one credit, debit, transfer or
//                 initial balance;
//   kBalanceMax = 10,000,000,000.00 — the largest balance a wallet may hold. A credit that would
//                 exceed it is rejected (BALANCE_LIMIT_EXCEEDED), so balances never overflow.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace wallex {

enum class MoneyParseError {
  kNotANumber,     // not decimal text at all ("abc", "", "NaN", "1.2.3")
  kTooManyDecimals,  // a non-zero digit beyond the second decimal place
  kOutOfRange,     // larger than any amount Wallex accepts (including 1e400)
};

class Money {
 public:
  static constexpr std::int64_t kMinorPerUnit = 100;
  static constexpr std::int64_t kAmountMaxMinor = 1'000'000'000LL * kMinorPerUnit;
  static constexpr std::int64_t kBalanceMaxMinor = 10'000'000'000LL * kMinorPerUnit;

  constexpr Money() = default;
  static constexpr Money from_minor(std::int64_t minor) { return Money(minor); }

  // Parses the text of a JSON number or a decimal string: an optional '-', digits without
  // leading zeros, an optional fraction and an optional exponent ("12", "12.5", "1.25e1").
  // The value must be a whole number of cents and |value| <= kBalanceMax.
  static Result<Money, MoneyParseError> parse(std::string_view text);

  constexpr std::int64_t minor() const { return minor_; }
  constexpr bool is_positive() const { return minor_ > 0; }

  // Overflow-checked arithmetic; nullopt when the result leaves [-kBalanceMax, kBalanceMax].
  std::optional<Money> plus(Money other) const;
  std::optional<Money> minus(Money other) const;

  // The text of an amount, on the stack (for the writer's hot paths; valid while it lives).
  class Text {
   public:
    std::string_view view() const { return {text_, size_}; }

   private:
    friend class Money;
    char text_[24];  // "-" and 19 digits, "." and two
    std::size_t size_ = 0;
  };
  // "130.5", "0.3", "100": shortest decimal text, for JSON numbers.
  Text json_number_text() const;
  std::string to_json_number() const { return std::string(json_number_text().view()); }
  // "130.50", "0.30", "100.00": always two decimals, for decimal strings.
  Text fixed2_text() const;
  std::string to_fixed2() const { return std::string(fixed2_text().view()); }

  friend constexpr auto operator<=>(Money, Money) = default;

 private:
  constexpr explicit Money(std::int64_t minor) : minor_(minor) {}
  std::int64_t minor_ = 0;
};

}  // namespace wallex
