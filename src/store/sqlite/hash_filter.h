// HashFilter: a Bloom filter of 64-bit hashes in a fixed array of 2^bits_log2 bits, blocked: both
// probes of a hash set or test two bits of one 64-bit word. "No" is certain for every hash added
// since the last clear(); "maybe" is wrong with a probability of 0.24% at 2.5 million hashes in
// 2^27 bits (16 MiB), 3.5% at 13 million, 28% at 50 million (a filter with independent probes:
// 0.13%, 3.1%, 28%). The hashes must be well mixed already (the word is chosen by the top bits,
// the two bits by the low twelve). Nothing is ever removed: a filter that holds too many stale
// hashes is replaced by a new one. bits_log2 is held to 6..32.
//
// Why blocked: a lookup costs one cache line instead of two. The word is chosen by the top bits
// taken in the order SQLite sorts signed integers, so hashes added in the idempotency index's
// order (a merge's sorted run, a rebuild's scan) walk the array forwards. The array asks for
// transparent huge pages: a random lookup in 16 MiB of 4 KiB pages mostly missed the TLB.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace wallex {
namespace detail {
// Frees a HashFilter's array: the whole mapping it was carved from.
struct Unmap {
  std::size_t length = 0;
  void* mapping = nullptr;
  void operator()(std::uint64_t*) const { ::munmap(mapping, length); }
};
}  // namespace detail

class HashFilter {
 public:
  explicit HashFilter(unsigned bits_log2 = 27)
      : bits_log2_(bits_log2 < 6    ? 6
                   : bits_log2 > 32 ? 32
                                    : bits_log2) {}

  void add(std::uint64_t hash) {
    if (!words_) allocate();
    words_[word_of(hash)] |= bits_of(hash);
  }
  bool may_contain(std::uint64_t hash) const {
    const std::uint64_t bits = bits_of(hash);
    return words_ && (words_[word_of(hash)] & bits) == bits;
  }
  // Empty again, its memory freed (allocated again by the next add).
  void clear() { words_.reset(); }

 private:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  std::size_t bytes() const { return std::size_t{1} << (bits_log2_ - 3); }
  std::size_t word_of(std::uint64_t hash) const {
    const unsigned word_bits = bits_log2_ - 6;
    const std::uint64_t ordered = hash ^ (std::uint64_t{1} << 63);
    return word_bits == 0 ? 0 : static_cast<std::size_t>(ordered >> (64 - word_bits));
  }
  static std::uint64_t bits_of(std::uint64_t hash) {
    return (std::uint64_t{1} << (hash & 63)) | (std::uint64_t{1} << ((hash >> 6) & 63));
  }
  // Anonymous pages come zeroed and are faulted in by the first bit set in them, so the array is
  // never written whole (16 MiB at once would stall the writer for milliseconds). Mapped with a
  // huge page's slack so that the array can start on a huge page boundary.
  void allocate() {
    const std::size_t length = bytes() + kHugePage;
    void* mapping =
        ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) throw std::bad_alloc();
    const auto address = reinterpret_cast<std::uintptr_t>(mapping);
    const std::uintptr_t aligned = (address + kHugePage - 1) & ~(kHugePage - 1);
    (void)::madvise(reinterpret_cast<void*>(aligned), bytes(), MADV_HUGEPAGE);  // a hint only
    words_ = std::unique_ptr<std::uint64_t[], detail::Unmap>(
        reinterpret_cast<std::uint64_t*>(aligned), detail::Unmap{length, mapping});
  }

  unsigned bits_log2_;
  std::unique_ptr<std::uint64_t[], detail::Unmap> words_;
};

}  // namespace wallex
