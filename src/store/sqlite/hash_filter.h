// HashFilter: a Bloom filter of 64-bit hashes, two probes into a fixed array of 2^bits_log2 bits.
// "No" is certain for every hash added since the last clear(); "maybe" is wrong with a
// probability of about (1 - e^(-2n/m))^2 for n hashes in m bits (2^27 bits, 16 MiB: 0.14% at 2.5
// million hashes, 3.4% at 13 million, 28% at 50 million). The hashes must be well mixed already
// (the probes are two of their bit fields). Nothing is ever removed: a filter that holds too
// many stale hashes is replaced by a new one. bits_log2 is held to 6..32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace wallex {

class HashFilter {
 public:
  explicit HashFilter(unsigned bits_log2 = 27)
      : bits_log2_(bits_log2 < 6    ? 6
                   : bits_log2 > 32 ? 32
                                    : bits_log2) {}

  void add(std::uint64_t hash) {
    if (!words_) {
      // calloc: fresh pages from the system come zeroed, so the array is not written whole here
      // (16 MiB at once would stall the writer for milliseconds); each page is faulted in by the
      // first bit set in it.
      words_.reset(static_cast<std::uint64_t*>(std::calloc(word_count(), sizeof(std::uint64_t))));
      if (!words_) throw std::bad_alloc();
    }
    set(hash);
    set(hash >> 32);
  }
  bool may_contain(std::uint64_t hash) const { return words_ && test(hash) && test(hash >> 32); }
  // Empty again, its memory freed (allocated again by the next add).
  void clear() { words_.reset(); }

 private:
  struct Free {
    void operator()(std::uint64_t* words) const { std::free(words); }
  };
  std::size_t word_count() const { return std::size_t{1} << (bits_log2_ - 6); }
  std::uint64_t mask() const { return (std::uint64_t{1} << bits_log2_) - 1; }
  void set(std::uint64_t probe) {
    const std::uint64_t bit = probe & mask();
    words_[bit >> 6] |= std::uint64_t{1} << (bit & 63);
  }
  bool test(std::uint64_t probe) const {
    const std::uint64_t bit = probe & mask();
    return (words_[bit >> 6] >> (bit & 63)) & 1;
  }

  unsigned bits_log2_;
  std::unique_ptr<std::uint64_t[], Free> words_;
};

}  // namespace wallex
