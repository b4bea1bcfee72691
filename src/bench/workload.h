// Workload: what the bench asks the server to do. Every operation is a pure function of
// (seed, operation index), so runs are reproducible and any thread can build any operation.
//
// Scenarios (phase 2; phase 1 creates the wallets, except for `health`):
//   original — the NestJS project's load test: each operation uniformly one of credit
//              (10–500), debit (10–200) or transfer (10–300, two distinct wallets); initial
//              balances uniform integers 100–5000. Insufficient funds are expected here.
//   credit, debit, transfer — only that operation, with the same amounts; initial balances
//              kDefaultInitialBalance so debits and transfers do not run dry.
//   mixed    — credit, debit, transfer and GET /wallets/{id}, a quarter each.
//   health   — GET /health only: the ceiling of the HTTP path with this generator.
// `initial_balance`, when given, replaces the scenario's initial balances.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bench/wallet_picker.h"
#include "domain/money.h"

namespace wallex::bench {

enum class Scenario { kOriginal, kCredit, kDebit, kTransfer, kMixed, kHealth };

enum class OperationType { kCreate, kCredit, kDebit, kTransfer, kRead, kHealth };
inline constexpr std::size_t kOperationTypeCount = 6;

std::string_view scenario_name(Scenario scenario);
std::optional<Scenario> parse_scenario(std::string_view name);
std::string_view distribution_name(Distribution distribution);
std::optional<Distribution> parse_distribution(std::string_view name);
std::string_view operation_name(OperationType type);

struct Operation {
  OperationType type = OperationType::kHealth;
  std::uint32_t wallet = 0;        // credit, debit, read: the wallet; transfer: the source
  std::uint32_t other_wallet = 0;  // transfer: the destination
  Money amount;                    // credit, debit, transfer
};

// Whole-unit amount ranges, inclusive, as in the original load test.
struct UnitRange {
  std::uint64_t low;
  std::uint64_t high;
};
inline constexpr UnitRange kCreditUnits{10, 500};
inline constexpr UnitRange kDebitUnits{10, 200};
inline constexpr UnitRange kTransferUnits{10, 300};
inline constexpr UnitRange kOriginalInitialUnits{100, 5000};
inline constexpr std::int64_t kDefaultInitialBalanceUnits = 1'000'000;

struct WorkloadOptions {
  Scenario scenario = Scenario::kOriginal;
  Distribution distribution = Distribution::kUniform;
  double zipf_s = 0.99;
  std::uint32_t wallet_count = 1000;
  std::uint64_t seed = 1;
  std::optional<Money> initial_balance;
};

// Why the options cannot make a workload, or nullopt when they can.
std::optional<std::string> workload_problem(const WorkloadOptions& options);

class Workload {
 public:
  // `options` must pass workload_problem().
  explicit Workload(WorkloadOptions options);

  const WorkloadOptions& options() const { return options_; }
  // Phase 1 is skipped when false (the health scenario touches no wallet).
  bool uses_wallets() const { return options_.scenario != Scenario::kHealth; }
  Money initial_balance(std::uint32_t wallet) const;
  Operation operation(std::uint64_t index) const;

 private:
  WorkloadOptions options_;
  WalletPicker picker_;
};

}  // namespace wallex::bench
