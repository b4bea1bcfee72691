#include "common/id_generator.h"

#include <string>

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
  // 8-4-4-4-12 hex digits: high's 64 bits, then low's, with dashes after digits 8, 12, 16, 20.
  // Written by hand: snprintf was a measurable share of a transfer's cost on the writer thread.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text(36, '-');
  std::size_t at = 0;
  for (int nibble = 0; nibble < 32; ++nibble) {
    if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
    const std::uint64_t word = nibble < 16 ? high : low;
    const int shift = 60 - 4 * (nibble % 16);
    text[at++] = kHex[(word >> shift) & 0xf];
  }
  return text;
}

}  // namespace wallex
