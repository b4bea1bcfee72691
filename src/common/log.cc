#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "common/check.h"
#include "common/clock.h"
#include "common/time_format.h"

namespace wallex::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mutex;

const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
    case Level::kSilent: return "silent";
  }
  return "?";
}

}  // namespace

void set_level(Level level) { g_level.store(level); }

void write(Level level, std::string_view message) {
  if (level < g_level.load()) return;
  const std::string stamp = format_iso8601_ms(SystemClock().now_ms());
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s %s %.*s\n", stamp.c_str(), level_name(level),
               static_cast<int>(message.size()), message.data());
}

}  // namespace wallex::log

namespace wallex::detail {

void check_failed(const char* expression, const char* file, int line) {
  std::fprintf(stderr, "WALLEX_CHECK failed: %s at %s:%d\n", expression, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace wallex::detail
