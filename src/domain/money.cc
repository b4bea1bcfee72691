#include "domain/money.h"

#include <charconv>
#include <cstdlib>

namespace wallex {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Largest number of significant integer digits any accepted value can have (kBalanceMax has 11
// integer digits); anything longer is out of range before any arithmetic happens.
constexpr int kIntegerDigitsMax = 11;

}  // namespace

Result<Money, MoneyParseError> Money::parse(std::string_view text) {
  std::size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && text[pos] == '-') {
    negative = true;
    ++pos;
  }
  // Integer part: "0" or a non-zero digit followed by digits.
  const std::size_t int_start = pos;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  const std::string_view int_part = text.substr(int_start, pos - int_start);
  if (int_part.empty() || (int_part.size() > 1 && int_part[0] == '0')) {
    return fail(MoneyParseError::kNotANumber);
  }
  std::string_view frac_part;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const std::size_t frac_start = pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    frac_part = text.substr(frac_start, pos - frac_start);
    if (frac_part.empty()) return fail(MoneyParseError::kNotANumber);
  }
  long exponent = 0;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool exp_negative = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      exp_negative = text[pos] == '-';
      ++pos;
    }
    const std::size_t exp_start = pos;
    while (pos < text.size() && is_digit(text[pos])) {
      // Saturate: any exponent beyond a few hundred is out of range (or zero digits) anyway.
      if (exponent < 100000) exponent = exponent * 10 + (text[pos] - '0');
      ++pos;
    }
    if (pos == exp_start) return fail(MoneyParseError::kNotANumber);
    if (exp_negative) exponent = -exponent;
  }
  if (pos != text.size()) return fail(MoneyParseError::kNotANumber);

  // All significant digits in one string; the decimal point sits after `point` digits.
  std::string digits;
  digits.reserve(int_part.size() + frac_part.size());
  digits.append(int_part);
  digits.append(frac_part);
  long point = static_cast<long>(int_part.size()) + exponent;
  // Strip leading zeros (they do not change the value) and trailing zeros after the point.
  std::size_t first = 0;
  while (first < digits.size() && digits[first] == '0') {
    ++first;
    --point;
  }
  digits.erase(0, first);
  while (!digits.empty() && digits.back() == '0' && static_cast<long>(digits.size()) > point) {
    digits.pop_back();
  }
  if (digits.empty()) return Money(0);  // zero in any spelling ("0", "-0.00", "0e5")
  if (point > kIntegerDigitsMax) return fail(MoneyParseError::kOutOfRange);
  if (static_cast<long>(digits.size()) - point > 2) return fail(MoneyParseError::kTooManyDecimals);

  // Now value = digits * 10^(point - digits.size()) with at most 11 integer and 2 decimal digits,
  // so digits * 10^(point + 2 - size) fits comfortably in 64 bits.
  std::int64_t minor = 0;
  for (const char c : digits) minor = minor * 10 + (c - '0');
  for (long i = static_cast<long>(digits.size()); i < point + 2; ++i) minor *= 10;
  if (minor > kBalanceMaxMinor) return fail(MoneyParseError::kOutOfRange);
  return Money(negative ? -minor : minor);
}

std::optional<Money> Money::plus(Money other) const {
  const std::int64_t sum = minor_ + other.minor_;  // both within ±kBalanceMax: cannot overflow
  if (sum > kBalanceMaxMinor || sum < -kBalanceMaxMinor) return std::nullopt;
  return Money(sum);
}

std::optional<Money> Money::minus(Money other) const {
  const std::int64_t difference = minor_ - other.minor_;
  if (difference > kBalanceMaxMinor || difference < -kBalanceMaxMinor) return std::nullopt;
  return Money(difference);
}

Money::Text Money::fixed2_text() const {
  Text text;
  char* out = text.text_;
  if (minor_ < 0) *out++ = '-';
  // The magnitude of the smallest int64 does not fit in one: as unsigned.
  const std::uint64_t magnitude =
      minor_ < 0 ? 0 - static_cast<std::uint64_t>(minor_) : static_cast<std::uint64_t>(minor_);
  out = std::to_chars(out, text.text_ + sizeof text.text_, magnitude / kMinorPerUnit).ptr;
  const auto cents = static_cast<unsigned>(magnitude % kMinorPerUnit);
  *out++ = '.';
  *out++ = static_cast<char>('0' + cents / 10);
  *out++ = static_cast<char>('0' + cents % 10);
  text.size_ = static_cast<std::size_t>(out - text.text_);
  return text;
}

Money::Text Money::json_number_text() const {
  Text text = fixed2_text();
  const std::string_view fixed = text.view();
  if (fixed.ends_with("00")) {
    text.size_ -= 3;  // drop ".00"
  } else if (fixed.back() == '0') {
    text.size_ -= 1;  // "130.50" -> "130.5"
  }
  return text;
}

}  // namespace wallex
