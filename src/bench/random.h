// SplitMix64: a tiny, fast, well-mixed generator. The bench derives one generator per operation
// from (seed, operation index), so operation i is the same on every run with the same seed, no
// matter which thread or connection sends it, and no generator is shared between threads.
#pragma once

#include <cstdint>

namespace wallex::bench {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  // A generator for stream `index` of `seed`: independent enough for load generation.
  static SplitMix64 for_stream(std::uint64_t seed, std::uint64_t index) {
    SplitMix64 mixer(seed ^ (index * 0xD1B54A32D192ED03ULL));
    return SplitMix64(mixer.next() ^ index);
  }

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [low, high]; the modulo bias is below 2^-40 for the small ranges used here.
  std::uint64_t between(std::uint64_t low, std::uint64_t high) {
    return low + next() % (high - low + 1);
  }
  // Uniform in [0, 1) with 53 random bits.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

}  // namespace wallex::bench
