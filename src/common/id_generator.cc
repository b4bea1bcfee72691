#include "common/id_generator.h"

#include <string>

namespace wallex {

RandomIdGenerator::RandomIdGenerator() {
  std::random_device device;
  engine_.seed((static_cast<std::uint64_t>(device()) << 32) ^ device());
}

RandomIdGenerator::RandomIdGenerator(std::uint64_t seed) : engine_(seed) {}

namespace {

// 8-4-4-4-12 hex digits: high's 64 bits, then low's, with dashes after digits 8, 12, 16, 20.
// Written by hand: snprintf was a measurable share of a transfer's cost on the writer thread.
std::string uuid_text(std::uint64_t high, std::uint64_t low) {
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

constexpr std::uint64_t kVariantMask = 0x3fffffffffffffffULL;
constexpr std::uint64_t kVariant = 0x8000000000000000ULL;  // RFC 4122 / 9562 variant

}  // namespace

std::pair<std::uint64_t, std::uint64_t> RandomIdGenerator::draw_two() {
  std::lock_guard lock(mutex_);
  const std::uint64_t first = engine_();
  return {first, engine_()};
}

std::string version4_uuid(std::uint64_t high, std::uint64_t low) {
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  return uuid_text(high, (low & kVariantMask) | kVariant);
}

std::string RandomIdGenerator::next_uuid() {
  const auto [high, low] = draw_two();
  return version4_uuid(high, low);
}

std::string RandomIdGenerator::next_time_ordered_uuid(TimestampMs now_ms) {
  const auto [random_a, low] = draw_two();
  const auto ms = static_cast<std::uint64_t>(now_ms < 0 ? 0 : now_ms) & 0xffffffffffffULL;
  const std::uint64_t high = (ms << 16) | 0x7000ULL | (random_a & 0x0fffULL);  // version 7
  return uuid_text(high, (low & kVariantMask) | kVariant);
}

}  // namespace wallex
