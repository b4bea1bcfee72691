// Fuzzes Money::parse with arbitrary text. Properties, for every input:
// - parsing never crashes, throws or reads out of bounds (ASan/UBSan watch);
// - an accepted value lies within [-kBalanceMax, kBalanceMax];
// - an accepted value formats (to_fixed2, to_json_number) to text that parses back to itself;
// - for plain decimal text (no exponent) the result equals an independent, digit-by-digit
//   reference that shares no code with Money::parse.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/money.h"
#include "fuzz_check.h"

namespace {

using wallex::Money;
using wallex::MoneyParseError;

// What the reference makes of a text. A refused text may break several rules at once (too many
// decimals and too large); Money::parse may then name either.
struct Reference {
  bool accepted = false;
  bool not_a_number = false;
  bool too_many_decimals = false;
  bool out_of_range = false;
  std::int64_t minor = 0;

  bool allows(MoneyParseError error) const {
    switch (error) {
      case MoneyParseError::kNotANumber:
        return not_a_number;
      case MoneyParseError::kTooManyDecimals:
        return too_many_decimals;
      case MoneyParseError::kOutOfRange:
        return out_of_range;
    }
    return false;
  }
};

Reference not_a_number() {
  Reference result;
  result.not_a_number = true;
  return result;
}

// The meaning of `-?(0|[1-9][0-9]*)(\.[0-9]+)?` in cents, or why it has none. Nullopt for any
// other text (exponents included), which this reference does not judge.
std::optional<Reference> reference_parse(std::string_view text) {
  std::size_t pos = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) ++pos;
  const std::size_t int_start = pos;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  const std::string_view int_digits = text.substr(int_start, pos - int_start);
  std::string_view frac_digits;
  if (pos < text.size() && text[pos] == '.') {
    const std::size_t frac_start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    frac_digits = text.substr(frac_start, pos - frac_start);
    if (frac_digits.empty()) return not_a_number();
  }
  if (pos != text.size()) {
    if (text[pos] == 'e' || text[pos] == 'E') return std::nullopt;
    return not_a_number();
  }
  if (int_digits.empty() || (int_digits.size() > 1 && int_digits[0] == '0')) {
    return not_a_number();
  }

  Reference result;
  for (std::size_t i = 2; i < frac_digits.size(); ++i) {
    if (frac_digits[i] != '0') result.too_many_decimals = true;
  }
  // Whole units, capped as soon as they pass the maximum (so arbitrarily long digit runs never
  // overflow), then cents from the first two decimals.
  constexpr std::int64_t kUnitsCap = Money::kBalanceMaxMinor / Money::kMinorPerUnit + 1;
  std::int64_t units = 0;
  for (const char c : int_digits) {
    units = units * 10 + (c - '0');
    if (units >= kUnitsCap) break;
  }
  std::int64_t cents = units * Money::kMinorPerUnit;
  if (frac_digits.size() >= 1) cents += 10 * (frac_digits[0] - '0');
  if (frac_digits.size() >= 2) cents += frac_digits[1] - '0';
  result.out_of_range = cents > Money::kBalanceMaxMinor;
  result.accepted = !result.too_many_decimals && !result.out_of_range;
  result.minor = negative ? -cents : cents;
  return result;
}

void check_round_trip(Money value) {
  const std::string fixed = value.to_fixed2();
  const std::string number = value.to_json_number();
  FUZZ_CHECK(fixed.size() >= 4 && fixed[fixed.size() - 3] == '.');
  auto from_fixed = Money::parse(fixed);
  FUZZ_CHECK(from_fixed.ok());
  FUZZ_CHECK(from_fixed.value() == value);
  auto from_number = Money::parse(number);
  FUZZ_CHECK(from_number.ok());
  FUZZ_CHECK(from_number.value() == value);
  // The JSON number form is minimal: no trailing zero after a decimal point.
  if (number.find('.') != std::string::npos) FUZZ_CHECK(number.back() != '0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = Money::parse(text);
  if (parsed) {
    const Money value = parsed.value();
    FUZZ_CHECK(value.minor() <= Money::kBalanceMaxMinor);
    FUZZ_CHECK(value.minor() >= -Money::kBalanceMaxMinor);
    check_round_trip(value);
    // Arithmetic stays within bounds or says it cannot.
    if (auto sum = value.plus(value)) FUZZ_CHECK(sum->minor() == 2 * value.minor());
    if (auto zero = value.minus(value)) FUZZ_CHECK(zero->minor() == 0);
  }
  if (const std::optional<Reference> expected = reference_parse(text)) {
    FUZZ_CHECK(parsed.ok() == expected->accepted);
    if (expected->accepted) {
      FUZZ_CHECK(parsed.value().minor() == expected->minor);
    } else {
      FUZZ_CHECK(expected->allows(parsed.error()));
    }
  }
  return 0;
}
