#include "common/id_generator.h"

#include <cstdio>

namespace wallex {

RandomIdGenerator::RandomIdGenerator() {
  std::random_device device;
  engine_.seed((static_cast<std::uint64_t>(device()) << 32) ^ device());
}

RandomIdGenerator::RandomIdGenerator(std::uint64_t seed) : engine_(seed) {}

std::string RandomIdGenerator::next_uuid() {
  std::uint64_t high = 0, low = 0;
  {
    std::lock_guard lock(mutex_);
    high = engine_();
    low = engine_();
  }
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;    // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xffff),
                static_cast<unsigned>(high & 0xffff), static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

}  // namespace wallex
