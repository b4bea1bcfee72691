// run_bench: one complete wallex-bench run against a running server.
//
//   phase 1  create the wallets (POST /wallets, each with its own Idempotency-Key), closed loop;
//            skipped by the health scenario. A failed creation ends the run (nothing after it
//            could be verified).
//   phase 2  the scenario's operations, closed or open loop, each POST with its own key.
//   phase 3  unless verify is off: read every wallet back (GET /wallets/{id}) and check it
//            against the VerificationModel.
//
// Wallet ids and idempotency keys start with run_id, so runs never collide on one server.
// Passing means: the run could be carried out, no failure outcome in any phase, and (when
// verifying) every wallet exact. Progress goes to stderr about once per second.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/endpoint.h"
#include "bench/outcomes.h"
#include "bench/verification_model.h"
#include "bench/workload.h"

namespace wallex::bench {

// The Idempotency-Key of each operation. kOrdered: "<run id>-op-<index>", in the spirit of the
// original's load test ("idem-<epoch ms>-<random>"): keys of one run share a prefix and arrive
// nearly in order. kRandom: a version 4 UUID drawn from (run id, index), as a client that makes
// its keys with a UUID library would send; each lands on a random page of the key index.
enum class KeyStyle { kOrdered, kRandom };

struct BenchOptions {
  Endpoint endpoint;
  WorkloadOptions workload;
  std::uint64_t operations = 20'000;  // closed loop without a duration
  int workers = 20;                   // connections
  int threads = 1;
  double rate_per_second = 0;  // > 0: open loop for duration_s
  double duration_s = 0;       // closed loop: run for this long instead of `operations`
  std::int64_t timeout_ms = 10'000;
  bool verify = true;
  bool progress = true;
  std::string run_id;  // 1–100 characters of [A-Za-z0-9._:@-]
  KeyStyle idempotency_keys = KeyStyle::kOrdered;
};

// Why the options cannot make a run, or nullopt.
std::optional<std::string> bench_options_problem(const BenchOptions& options);

struct PhaseReport {
  std::string name;
  std::uint64_t requests = 0;  // completed: replies and failures
  std::int64_t elapsed_us = 0;
  PhaseStats stats;

  double requests_per_second() const;
};

struct BenchReport {
  BenchOptions options;
  std::optional<PhaseReport> create;
  std::optional<PhaseReport> operations;
  std::optional<PhaseReport> read_back;
  std::optional<VerificationReport> verification;
  std::vector<std::string> errors;  // why (part of) the run could not be carried out

  std::uint64_t failures() const;
  bool passed() const;
};

BenchReport run_bench(const BenchOptions& options);

// The wallet id of wallet `index` in the run `run_id`.
std::string wallet_id(const std::string& run_id, std::uint32_t index);

// The Idempotency-Key of operation `index` of the run (options.idempotency_keys): the same on
// every call, different for every index and, with overwhelming probability, every run id.
std::string operation_key(const BenchOptions& options, std::uint64_t index);

}  // namespace wallex::bench
