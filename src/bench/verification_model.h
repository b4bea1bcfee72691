// The bench's independent model of what the server must hold after a run.
//
// While the run goes, each engine thread records into its own EffectRecorder what every
// acknowledged (201) reply proves: the operation's effect on each wallet it touched, and the
// wallet's (version, balance) right after it. Operations on one wallet may be in flight on
// several connections at once, so the model never assumes an order; it sums effects:
//   expected balance = initial + Σ credits − Σ debits − Σ transfers out + Σ transfers in
//   expected version = (1 if initial > 0 else 0) + acknowledged operations touching the wallet
// and checks the read-back state of every wallet against that, exactly. Total money must equal
// initial money + credits − debits (transfers move money, never create it).
//
// Independently, the replies form a history per wallet: sorted by version they must be
// contiguous (no version given twice, none skipped) and each balance must be the previous one
// plus the operation's effect. Equal sums with a broken history (a lost update hidden by a
// compensating one) still fail.
//
// An operation whose outcome is unknown (timeout, connection lost) may or may not have been
// applied: the wallets it touched are "uncertain" and verification cannot pass.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/replies.h"
#include "bench/workload.h"
#include "domain/money.h"

namespace wallex::bench {

enum class ChangeKind { kCreation, kCredit, kDebit, kTransferOut, kTransferIn };

// One acknowledged change of one wallet, as its reply showed it.
struct Observation {
  std::uint32_t wallet = 0;
  ChangeKind kind = ChangeKind::kCreation;
  Money delta;               // signed effect on the balance (a creation: the initial balance)
  Money balance;             // balance right after the change
  std::int64_t version = 0;  // version right after the change
};

// Not thread-safe: one per engine thread, merged into the model after the threads joined.
class EffectRecorder {
 public:
  void created(std::uint32_t wallet, Money initial_balance, const WalletSnapshot& reply);
  void credited(std::uint32_t wallet, Money amount, const WalletSnapshot& reply);
  void debited(std::uint32_t wallet, Money amount, const WalletSnapshot& reply);
  void transferred(std::uint32_t from, std::uint32_t to, Money amount, const TransferReply& reply);
  // The operation may or may not have taken effect.
  void outcome_unknown(const Operation& operation);

  const std::vector<Observation>& observations() const { return observations_; }
  const std::vector<std::uint32_t>& uncertain_wallets() const { return uncertain_; }

 private:
  std::vector<Observation> observations_;
  std::vector<std::uint32_t> uncertain_;
};

struct VerificationReport {
  static constexpr std::size_t kProblemsListedMax = 20;

  std::size_t wallets_checked = 0;
  std::size_t wallets_exact = 0;      // balance and version exactly as expected
  std::size_t wallets_uncertain = 0;  // touched by an operation of unknown outcome
  std::size_t observations = 0;       // acknowledged changes checked as histories
  Money initial_total;
  Money credits_total;    // credit operations
  Money debits_total;     // debit operations
  Money transfers_total;  // money moved by transfers (out of one wallet, into another)
  Money expected_total;   // initial + credits − debits
  Money actual_total;     // sum of the read-back balances
  std::size_t problem_count = 0;
  std::vector<std::string> problems;  // the first kProblemsListedMax, for the report

  bool passed() const { return problem_count == 0 && wallets_uncertain == 0; }
  void add_problem(std::string problem);
};

class VerificationModel {
 public:
  // The initial balance the bench asked for, per wallet.
  explicit VerificationModel(std::vector<Money> requested_initial_balances);

  // Call after the recording threads have finished.
  void absorb(const EffectRecorder& recorder);

  // `read_back[w]` is wallet w as GET /wallets/{id} returned it, or nullopt when the read failed
  // or the wallet did not exist. `read_problems` lists why reads failed (reported as problems).
  VerificationReport verify(const std::vector<std::optional<WalletSnapshot>>& read_back,
                            const std::vector<std::string>& read_problems) const;

 private:
  std::vector<Money> requested_initial_;
  std::vector<Observation> observations_;
  std::vector<bool> uncertain_;
};

// Exact sum of two amounts that may exceed one wallet's limit (totals over many wallets);
// stops the process on 64-bit overflow, which no run of the bench can reach.
Money add_totals(Money a, Money b);

}  // namespace wallex::bench
