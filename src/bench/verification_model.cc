#include "bench/verification_model.h"

#include <algorithm>

#include "common/check.h"

namespace wallex::bench {
namespace {

Money negated(Money amount) { return Money::from_minor(-amount.minor()); }

std::string describe(Money amount) { return amount.to_json_number(); }

}  // namespace

Money add_totals(Money a, Money b) {
  std::int64_t sum = 0;
  WALLEX_CHECK(!__builtin_add_overflow(a.minor(), b.minor(), &sum));
  return Money::from_minor(sum);
}

void EffectRecorder::created(std::uint32_t wallet, Money initial_balance,
                             const WalletSnapshot& reply) {
  observations_.push_back(
      Observation{wallet, ChangeKind::kCreation, initial_balance, reply.balance, reply.version});
}

void EffectRecorder::credited(std::uint32_t wallet, Money amount, const WalletSnapshot& reply) {
  observations_.push_back(
      Observation{wallet, ChangeKind::kCredit, amount, reply.balance, reply.version});
}

void EffectRecorder::debited(std::uint32_t wallet, Money amount, const WalletSnapshot& reply) {
  observations_.push_back(
      Observation{wallet, ChangeKind::kDebit, negated(amount), reply.balance, reply.version});
}

void EffectRecorder::transferred(std::uint32_t from, std::uint32_t to, Money amount,
                                 const TransferReply& reply) {
  observations_.push_back(Observation{from, ChangeKind::kTransferOut, negated(amount),
                                      reply.from.balance, reply.from.version});
  observations_.push_back(
      Observation{to, ChangeKind::kTransferIn, amount, reply.to.balance, reply.to.version});
}

void EffectRecorder::outcome_unknown(const Operation& operation) {
  switch (operation.type) {
    case OperationType::kTransfer:
      uncertain_.push_back(operation.wallet);
      uncertain_.push_back(operation.other_wallet);
      break;
    case OperationType::kCreate:
    case OperationType::kCredit:
    case OperationType::kDebit:
      uncertain_.push_back(operation.wallet);
      break;
    case OperationType::kRead:
    case OperationType::kHealth:
      break;  // reads change nothing
  }
}

void VerificationReport::add_problem(std::string problem) {
  ++problem_count;
  if (problems.size() < kProblemsListedMax) problems.push_back(std::move(problem));
}

VerificationModel::VerificationModel(std::vector<Money> requested_initial_balances)
    : requested_initial_(std::move(requested_initial_balances)),
      uncertain_(requested_initial_.size(), false) {}

void VerificationModel::absorb(const EffectRecorder& recorder) {
  for (const Observation& o : recorder.observations()) {
    WALLEX_CHECK(o.wallet < requested_initial_.size());
  }
  observations_.insert(observations_.end(), recorder.observations().begin(),
                       recorder.observations().end());
  for (std::uint32_t wallet : recorder.uncertain_wallets()) {
    WALLEX_CHECK(wallet < uncertain_.size());
    uncertain_[wallet] = true;
  }
}

VerificationReport VerificationModel::verify(
    const std::vector<std::optional<WalletSnapshot>>& read_back,
    const std::vector<std::string>& read_problems) const {
  WALLEX_CHECK(read_back.size() == requested_initial_.size());
  VerificationReport report;
  for (const std::string& problem : read_problems) report.add_problem(problem);

  // Histories: observations grouped by wallet, in version order.
  std::vector<Observation> history = observations_;
  std::stable_sort(history.begin(), history.end(), [](const Observation& a, const Observation& b) {
    return a.wallet != b.wallet ? a.wallet < b.wallet : a.version < b.version;
  });
  report.observations = history.size();

  std::size_t next = 0;
  for (std::uint32_t wallet = 0; wallet < requested_initial_.size(); ++wallet) {
    const std::size_t begin = next;
    while (next < history.size() && history[next].wallet == wallet) ++next;
    const std::size_t end = next;
    const std::string name = "wallet #" + std::to_string(wallet);
    ++report.wallets_checked;
    if (uncertain_[wallet]) ++report.wallets_uncertain;

    // The summed model.
    bool created = false;
    Money initial;
    Money expected_balance;
    std::int64_t operations = 0;
    for (std::size_t i = begin; i < end; ++i) {
      const Observation& o = history[i];
      expected_balance = add_totals(expected_balance, o.delta);
      switch (o.kind) {
        case ChangeKind::kCreation:
          if (created) report.add_problem(name + ": acknowledged as created twice");
          created = true;
          initial = o.delta;
          continue;
        case ChangeKind::kCredit:
          report.credits_total = add_totals(report.credits_total, o.delta);
          break;
        case ChangeKind::kDebit:
          report.debits_total = add_totals(report.debits_total, negated(o.delta));
          break;
        case ChangeKind::kTransferOut:
          report.transfers_total = add_totals(report.transfers_total, negated(o.delta));
          break;
        case ChangeKind::kTransferIn:
          break;  // counted once, on the way out
      }
      ++operations;
    }
    if (!created) {
      if (begin != end) report.add_problem(name + ": changed but never acknowledged as created");
      if (read_back[wallet])
        report.add_problem(name + ": exists but its creation was not acknowledged");
      continue;
    }
    if (initial != requested_initial_[wallet]) {
      report.add_problem(name + ": created with " + describe(initial) + ", bench asked for " +
                         describe(requested_initial_[wallet]));
    }
    report.initial_total = add_totals(report.initial_total, initial);
    const std::int64_t initial_version = initial.is_positive() ? 1 : 0;
    const std::int64_t expected_version = initial_version + operations;

    // The history: creation first, then contiguous versions, each balance following from the
    // previous one. With an uncertain wallet gaps are expected, so only the sums are reported.
    if (!uncertain_[wallet]) {
      const Observation& first = history[begin];
      if (first.kind != ChangeKind::kCreation || first.version != initial_version ||
          first.balance != initial) {
        report.add_problem(name + ": creation reply shows version " +
                           std::to_string(first.version) + " balance " + describe(first.balance) +
                           ", expected version " + std::to_string(initial_version) + " balance " +
                           describe(initial));
      }
      for (std::size_t i = begin + 1; i < end; ++i) {
        const Observation& previous = history[i - 1];
        const Observation& current = history[i];
        if (current.version != previous.version + 1) {
          report.add_problem(name + ": acknowledged versions jump from " +
                             std::to_string(previous.version) + " to " +
                             std::to_string(current.version) +
                             (current.version == previous.version ? " (version given twice)" : ""));
        } else if (add_totals(previous.balance, current.delta) != current.balance) {
          report.add_problem(name + ": version " + std::to_string(current.version) + " shows " +
                             describe(current.balance) + ", expected " +
                             describe(add_totals(previous.balance, current.delta)));
        }
        if (current.balance.minor() < 0) {
          report.add_problem(name + ": negative balance " + describe(current.balance));
        }
      }
    }

    const std::optional<WalletSnapshot>& actual = read_back[wallet];
    if (!actual) {
      report.add_problem(name + ": could not be read back");
      continue;
    }
    report.actual_total = add_totals(report.actual_total, actual->balance);
    const bool balance_ok = actual->balance == expected_balance;
    const bool version_ok = actual->version == expected_version;
    if (balance_ok && version_ok) {
      ++report.wallets_exact;
    } else if (!uncertain_[wallet]) {
      report.add_problem(name + " (" + actual->id + "): balance " + describe(actual->balance) +
                         " version " + std::to_string(actual->version) + ", expected balance " +
                         describe(expected_balance) + " version " +
                         std::to_string(expected_version));
    }
  }

  report.expected_total = add_totals(add_totals(report.initial_total, report.credits_total),
                                     negated(report.debits_total));
  // Transfers move money between wallets, so they do not appear here; money made or lost by
  // the server (a transfer applied on one side only, a doubled credit) shows in the read-back sum.
  if (report.actual_total != report.expected_total && report.wallets_uncertain == 0) {
    report.add_problem("total money " + describe(report.actual_total) + ", expected " +
                       describe(report.expected_total) + " (initial + credits - debits)");
  }
  return report;
}

}  // namespace wallex::bench
