// ISO-8601 formatting and parsing of UTC timestamps with millisecond precision
// ("2026-11-25T21:45:41.123Z"), the only timestamp form Wallex writes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace wallex {

std::string format_iso8601_ms(TimestampMs ms);

// The same text without a heap allocation (every reply and event carries timestamps): view()
// is valid while the object lives.
class Iso8601Ms {
 public:
  explicit Iso8601Ms(TimestampMs ms);
  std::string_view view() const { return {text_, size_}; }

 private:
  char text_[48];
  std::size_t size_ = 0;
};

// Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff]Z" and "...+HH:MM"/"-HH:MM" offsets.
// Returns nullopt for anything else, including impossible dates.
std::optional<TimestampMs> parse_iso8601(std::string_view text);

}  // namespace wallex
