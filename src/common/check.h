// WALLEX_CHECK: an always-on invariant assertion (release builds included). A failed check means
// the program's own state is wrong; continuing could corrupt money, so the process stops.
#pragma once

namespace wallex::detail {
[[noreturn]] void check_failed(const char* expression, const char* file, int line);
}  // namespace wallex::detail

#define WALLEX_CHECK(condition)                                        \
  do {                                                                 \
    if (!(condition)) [[unlikely]] {                                   \
      ::wallex::detail::check_failed(#condition, __FILE__, __LINE__);  \
    }                                                                  \
  } while (false)
