#include "common/time_format.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace wallex {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's civil algorithm,
// re-derived here).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2 ? 1 : 0), m, d};
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

bool read_digits(std::string_view text, std::size_t pos, std::size_t count, unsigned& out) {
  if (pos + count > text.size()) return false;
  unsigned value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  out = value;
  return true;
}

}  // namespace

Iso8601Ms::Iso8601Ms(TimestampMs ms) {
  std::int64_t days = ms / 86400000;
  std::int64_t rem = ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    days -= 1;
  }
  const Civil c = civil_from_days(days);
  const auto hour = static_cast<int>(rem / 3600000);
  const auto minute = static_cast<int>(rem / 60000 % 60);
  const auto second = static_cast<int>(rem / 1000 % 60);
  const auto milli = static_cast<int>(rem % 1000);
  if (c.year < 0 || c.year > 9999) {
    const int n =
        std::snprintf(text_, sizeof text_, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                      static_cast<long long>(c.year), c.month, c.day, hour, minute, second, milli);
    size_ = n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof text_ - 1);
    return;
  }
  // The common case without snprintf.
  static constexpr std::string_view kPattern = "0000-00-00T00:00:00.000Z";
  std::copy(kPattern.begin(), kPattern.end(), text_);
  size_ = kPattern.size();
  const auto put = [this](std::size_t at, unsigned value, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
      text_[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, static_cast<unsigned>(c.year), 4);
  put(5, c.month, 2);
  put(8, c.day, 2);
  put(11, static_cast<unsigned>(hour), 2);
  put(14, static_cast<unsigned>(minute), 2);
  put(17, static_cast<unsigned>(second), 2);
  put(20, static_cast<unsigned>(milli), 3);
}

std::string format_iso8601_ms(TimestampMs ms) { return std::string(Iso8601Ms(ms).view()); }

std::optional<TimestampMs> parse_iso8601(std::string_view text) {
  unsigned year = 0, month = 0, day = 0;
  if (!read_digits(text, 0, 4, year) || text.size() < 10 || text[4] != '-' ||
      !read_digits(text, 5, 2, month) || text[7] != '-' || !read_digits(text, 8, 2, day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  std::int64_t ms = days_from_civil(year, month, day) * 86400000;
  if (text.size() == 10) return ms;

  unsigned hour = 0, minute = 0, second = 0;
  if (text[10] != 'T' || !read_digits(text, 11, 2, hour) || text.size() < 19 || text[13] != ':' ||
      !read_digits(text, 14, 2, minute) || text[16] != ':' || !read_digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  ms += (hour * 3600 + minute * 60 + second) * 1000LL;
  std::size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    unsigned fraction = 0, digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 3) {
        fraction = fraction * 10 + static_cast<unsigned>(text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (pos == start) return std::nullopt;
    while (digits < 3) {
      fraction *= 10;
      ++digits;
    }
    ms += fraction;
  }
  if (pos == text.size()) return std::nullopt;  // a time needs an explicit zone
  if (text[pos] == 'Z' && pos + 1 == text.size()) return ms;
  if ((text[pos] == '+' || text[pos] == '-') && text.size() == pos + 6 && text[pos + 3] == ':') {
    unsigned off_h = 0, off_m = 0;
    if (!read_digits(text, pos + 1, 2, off_h) || !read_digits(text, pos + 4, 2, off_m) ||
        off_h > 23 || off_m > 59) {
      return std::nullopt;
    }
    const std::int64_t offset_ms = (off_h * 60 + off_m) * 60000LL;
    return text[pos] == '+' ? ms - offset_ms : ms + offset_ms;
  }
  return std::nullopt;
}

}  // namespace wallex
