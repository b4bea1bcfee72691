// WalletPicker: chooses which wallet an operation touches, by index in [0, wallet_count).
//   uniform — every wallet equally likely;
//   zipfian — the wallet of popularity rank k (1-based) has weight 1 / k^s; ranks are assigned
//             to wallets by a seeded shuffle, so the popular wallets are spread over the id space;
//   hot     — for transfers only: wallet 0 is one side of every transfer (source or destination,
//             picked at random), the other side uniform; other operations are uniform.
// Immutable after construction; safe to share between threads (each brings its own generator).
#pragma once

#include <cstdint>
#include <vector>

#include "bench/random.h"

namespace wallex::bench {

enum class Distribution { kUniform, kZipfian, kHot };

struct WalletPair {
  std::uint32_t from = 0;
  std::uint32_t to = 0;
};

class WalletPicker {
 public:
  // wallet_count >= 1; zipf_s > 0 (used only by kZipfian).
  WalletPicker(Distribution distribution, std::uint32_t wallet_count, double zipf_s,
               std::uint64_t seed);

  std::uint32_t pick(SplitMix64& random) const;
  // Two distinct wallets; needs wallet_count >= 2.
  WalletPair pick_pair(SplitMix64& random) const;

  static constexpr std::uint32_t kHotWallet = 0;

 private:
  std::uint32_t pick_by_popularity(SplitMix64& random) const;

  Distribution distribution_;
  std::uint32_t wallet_count_;
  std::vector<double> cumulative_;      // zipfian: cumulative weight by rank, normalized to 1
  std::vector<std::uint32_t> by_rank_;  // zipfian: wallet of each rank
};

}  // namespace wallex::bench
