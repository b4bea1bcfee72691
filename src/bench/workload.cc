#include "bench/workload.h"

#include <algorithm>

#include "common/check.h"

namespace wallex::bench {
namespace {

// Separate streams for initial balances and operations, so neither shifts the other.
constexpr std::uint64_t kInitialBalanceStream = 0x1B17'1A1B'A1A0'0CE5ULL;

Money units(std::uint64_t whole) {
  return Money::from_minor(static_cast<std::int64_t>(whole) * Money::kMinorPerUnit);
}

Money draw(SplitMix64& random, UnitRange range) {
  return units(random.between(range.low, range.high));
}

}  // namespace

std::string_view scenario_name(Scenario scenario) {
  switch (scenario) {
    case Scenario::kOriginal:
      return "original";
    case Scenario::kCredit:
      return "credit";
    case Scenario::kDebit:
      return "debit";
    case Scenario::kTransfer:
      return "transfer";
    case Scenario::kMixed:
      return "mixed";
    case Scenario::kHealth:
      return "health";
  }
  return "?";
}

std::optional<Scenario> parse_scenario(std::string_view name) {
  for (Scenario s : {Scenario::kOriginal, Scenario::kCredit, Scenario::kDebit, Scenario::kTransfer,
                     Scenario::kMixed, Scenario::kHealth}) {
    if (scenario_name(s) == name) return s;
  }
  return std::nullopt;
}

std::string_view distribution_name(Distribution distribution) {
  switch (distribution) {
    case Distribution::kUniform:
      return "uniform";
    case Distribution::kZipfian:
      return "zipfian";
    case Distribution::kHot:
      return "hot";
  }
  return "?";
}

std::optional<Distribution> parse_distribution(std::string_view name) {
  for (Distribution d : {Distribution::kUniform, Distribution::kZipfian, Distribution::kHot}) {
    if (distribution_name(d) == name) return d;
  }
  return std::nullopt;
}

std::string_view operation_name(OperationType type) {
  switch (type) {
    case OperationType::kCreate:
      return "create";
    case OperationType::kCredit:
      return "credit";
    case OperationType::kDebit:
      return "debit";
    case OperationType::kTransfer:
      return "transfer";
    case OperationType::kRead:
      return "read";
    case OperationType::kHealth:
      return "health";
  }
  return "?";
}

std::optional<std::string> workload_problem(const WorkloadOptions& options) {
  if (options.scenario == Scenario::kHealth) return std::nullopt;
  const bool transfers = options.scenario == Scenario::kOriginal ||
                         options.scenario == Scenario::kTransfer ||
                         options.scenario == Scenario::kMixed;
  if (options.wallet_count < (transfers ? 2U : 1U)) {
    return std::string("scenario ") + std::string(scenario_name(options.scenario)) +
           " needs at least " + (transfers ? "2 wallets" : "1 wallet");
  }
  if (options.distribution == Distribution::kZipfian &&
      !(options.zipf_s > 0 && options.zipf_s < 100)) {
    return std::string("--zipf-s must be in (0, 100)");
  }
  if (options.initial_balance && (options.initial_balance->minor() < 0 ||
                                  options.initial_balance->minor() > Money::kAmountMaxMinor)) {
    return "--initial-balance must be between 0 and " +
           Money::from_minor(Money::kAmountMaxMinor).to_json_number();
  }
  return std::nullopt;
}

Workload::Workload(WorkloadOptions options)
    : options_(options),
      picker_(options.distribution, std::max<std::uint32_t>(options.wallet_count, 1),
              options.zipf_s, options.seed) {
  WALLEX_CHECK(!workload_problem(options_).has_value());
}

Money Workload::initial_balance(std::uint32_t wallet) const {
  if (options_.initial_balance) return *options_.initial_balance;
  if (options_.scenario != Scenario::kOriginal) return units(kDefaultInitialBalanceUnits);
  SplitMix64 random = SplitMix64::for_stream(options_.seed ^ kInitialBalanceStream, wallet);
  return draw(random, kOriginalInitialUnits);
}

Operation Workload::operation(std::uint64_t index) const {
  SplitMix64 random = SplitMix64::for_stream(options_.seed, index);
  OperationType type = OperationType::kHealth;
  switch (options_.scenario) {
    case Scenario::kHealth:
      return Operation{};
    case Scenario::kCredit:
      type = OperationType::kCredit;
      break;
    case Scenario::kDebit:
      type = OperationType::kDebit;
      break;
    case Scenario::kTransfer:
      type = OperationType::kTransfer;
      break;
    case Scenario::kOriginal: {
      constexpr OperationType kTypes[] = {OperationType::kCredit, OperationType::kDebit,
                                          OperationType::kTransfer};
      type = kTypes[random.between(0, 2)];
      break;
    }
    case Scenario::kMixed: {
      constexpr OperationType kTypes[] = {OperationType::kCredit, OperationType::kDebit,
                                          OperationType::kTransfer, OperationType::kRead};
      type = kTypes[random.between(0, 3)];
      break;
    }
  }
  Operation operation;
  operation.type = type;
  switch (type) {
    case OperationType::kCredit:
      operation.wallet = picker_.pick(random);
      operation.amount = draw(random, kCreditUnits);
      break;
    case OperationType::kDebit:
      operation.wallet = picker_.pick(random);
      operation.amount = draw(random, kDebitUnits);
      break;
    case OperationType::kTransfer: {
      const WalletPair pair = picker_.pick_pair(random);
      operation.wallet = pair.from;
      operation.other_wallet = pair.to;
      operation.amount = draw(random, kTransferUnits);
      break;
    }
    case OperationType::kRead:
      operation.wallet = picker_.pick(random);
      break;
    case OperationType::kCreate:
    case OperationType::kHealth:
      break;
  }
  return operation;
}

}  // namespace wallex::bench
