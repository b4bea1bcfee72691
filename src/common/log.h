// A minimal, thread-safe line logger to stderr. Each line carries an ISO-8601 UTC timestamp and a
// level. Deliberately tiny: the service logs lifecycle and faults, never per request.
#pragma once

#include <string_view>

namespace wallex::log {

// kSilent is only a threshold: set_level(kSilent) turns logging off (tools and simulations).
enum class Level { kDebug, kInfo, kWarn, kError, kSilent };

void set_level(Level level);
void write(Level level, std::string_view message);

inline void info(std::string_view message) { write(Level::kInfo, message); }
inline void warn(std::string_view message) { write(Level::kWarn, message); }
inline void error(std::string_view message) { write(Level::kError, message); }

}  // namespace wallex::log
