// ISO-8601 formatting and parsing of UTC timestamps with millisecond precision
// ("2026-11-25T21:45:41.123Z"), the only timestamp form Wallex writes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace wallex {

std::string format_iso8601_ms(TimestampMs ms);

// Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff]Z" and "...+HH:MM"/"-HH:MM" offsets.
// Returns nullopt for anything else, including impossible dates.
std::optional<TimestampMs> parse_iso8601(std::string_view text);

}  // namespace wallex
