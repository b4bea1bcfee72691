#include "bench/wallet_picker.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/check.h"

namespace wallex::bench {

WalletPicker::WalletPicker(Distribution distribution, std::uint32_t wallet_count, double zipf_s,
                           std::uint64_t seed)
    : distribution_(distribution), wallet_count_(wallet_count) {
  WALLEX_CHECK(wallet_count_ >= 1);
  if (distribution_ != Distribution::kZipfian) return;
  WALLEX_CHECK(zipf_s > 0);
  cumulative_.resize(wallet_count_);
  double total = 0;
  for (std::uint32_t rank = 0; rank < wallet_count_; ++rank) {
    total += 1.0 / std::pow(static_cast<double>(rank + 1), zipf_s);
    cumulative_[rank] = total;
  }
  for (double& c : cumulative_) c /= total;
  cumulative_.back() = 1.0;  // no rounding gap at the top
  by_rank_.resize(wallet_count_);
  std::iota(by_rank_.begin(), by_rank_.end(), 0U);
  SplitMix64 shuffle(seed ^ 0x5A17F00DULL);
  for (std::uint32_t i = wallet_count_ - 1; i > 0; --i) {  // Fisher-Yates
    const auto j = static_cast<std::uint32_t>(shuffle.between(0, i));
    std::swap(by_rank_[i], by_rank_[j]);
  }
}

std::uint32_t WalletPicker::pick_by_popularity(SplitMix64& random) const {
  if (distribution_ != Distribution::kZipfian) {
    return static_cast<std::uint32_t>(random.between(0, wallet_count_ - 1));
  }
  const double u = random.unit();
  const auto rank = static_cast<std::size_t>(
      std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin());
  return by_rank_[std::min<std::size_t>(rank, wallet_count_ - 1)];
}

std::uint32_t WalletPicker::pick(SplitMix64& random) const { return pick_by_popularity(random); }

WalletPair WalletPicker::pick_pair(SplitMix64& random) const {
  WALLEX_CHECK(wallet_count_ >= 2);
  if (distribution_ == Distribution::kHot) {
    // The other side is uniform over every wallet except the hot one.
    const auto other = static_cast<std::uint32_t>(random.between(1, wallet_count_ - 1));
    if (random.next() & 1) return WalletPair{kHotWallet, other};
    return WalletPair{other, kHotWallet};
  }
  WalletPair pair;
  pair.from = pick_by_popularity(random);
  // Redraw until distinct: with zipfian the top wallet may be drawn twice often, but every draw
  // has probability < 1 of repeating it, so this ends quickly.
  do {
    pair.to = pick_by_popularity(random);
  } while (pair.to == pair.from);
  return pair;
}

}  // namespace wallex::bench
