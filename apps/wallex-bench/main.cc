// wallex-bench: the load generator and correctness auditor for a running Wallex server.
// Exit status: 0 when the run completed with no failure and (unless --no-verify) every wallet
// verified exactly; 1 otherwise; 2 for bad usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "bench/bench_run.h"
#include "bench/report.h"

namespace {

using namespace wallex::bench;

constexpr int kExitPass = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;

std::string make_run_id(std::uint64_t seed) {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return "bench-" + std::to_string(seed) + "-" + std::to_string(now_ms) + "-" +
         std::to_string(::getpid());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "wallex-bench: HTTP/1.1 load generator for Wallex. Creates wallets, runs a scenario, then "
      "reads every wallet back and verifies balances and versions exactly."};
  std::string url = "http://127.0.0.1:3000";
  std::string scenario = "original";
  std::string distribution = "uniform";
  std::string initial_balance;
  std::string json_path;
  std::string run_id;
  std::string key_style = "ordered";
  bool no_verify = false;
  bool quiet = false;
  BenchOptions options;
  app.add_option("--url", url, "Server base URL, http://host:port")->capture_default_str();
  app.add_option("--scenario", scenario, "original|credit|debit|transfer|mixed|health")
      ->capture_default_str();
  app.add_option("--distribution", distribution,
                 "Which wallets operations touch: uniform|zipfian|hot (hot: wallet 0 takes part "
                 "in every transfer)")
      ->capture_default_str();
  app.add_option("--zipf-s", options.workload.zipf_s, "Zipfian exponent")->capture_default_str();
  app.add_option("--wallets", options.workload.wallet_count, "Wallets created in phase 1")
      ->capture_default_str()
      ->check(CLI::Range(1U, 10'000'000U));
  app.add_option("--operations", options.operations,
                 "Operations in phase 2 (closed loop without --duration)")
      ->capture_default_str();
  app.add_option("--workers", options.workers, "Connections (one request in flight each)")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "Client threads sharing the connections")
      ->capture_default_str();
  app.add_option("--seed", options.workload.seed, "Seed of the workload")->capture_default_str();
  app.add_option("--rate", options.rate_per_second,
                 "Open loop: requests per second, sent at fixed intended times (needs --duration)");
  app.add_option("--duration", options.duration_s,
                 "Seconds of phase 2: open loop with --rate; otherwise closed loop for this long "
                 "instead of --operations");
  app.add_option("--initial-balance", initial_balance,
                 "Initial balance of every wallet (default: 100-5000 random for original, "
                 "1000000 otherwise)");
  app.add_option("--timeout-ms", options.timeout_ms, "Per-request timeout")->capture_default_str();
  app.add_option("--json", json_path, "Also write the report as JSON to this file");
  app.add_option("--run-id", run_id,
                 "Prefix of wallet ids and idempotency keys (default: bench-<seed>-<ms>-<pid>)");
  app.add_option("--idempotency-keys", key_style,
                 "ordered: <run-id>-op-<n>, like the original's load test; random: a version 4 "
                 "UUID per operation, as from a UUID library")
      ->capture_default_str()
      ->check(CLI::IsMember({"ordered", "random"}));
  app.add_flag("--no-verify", no_verify, "Skip reading the wallets back and verifying them");
  app.add_flag("--quiet", quiet, "No progress lines on stderr");
  CLI11_PARSE(app, argc, argv);

  auto endpoint = parse_endpoint_url(url);
  if (!endpoint) {
    std::fprintf(stderr, "wallex-bench: --url: %s\n", endpoint.error().c_str());
    return kExitUsage;
  }
  options.endpoint = endpoint.value();
  const auto parsed_scenario = parse_scenario(scenario);
  if (!parsed_scenario) {
    std::fprintf(stderr, "wallex-bench: unknown --scenario %s\n", scenario.c_str());
    return kExitUsage;
  }
  options.workload.scenario = *parsed_scenario;
  const auto parsed_distribution = parse_distribution(distribution);
  if (!parsed_distribution) {
    std::fprintf(stderr, "wallex-bench: unknown --distribution %s\n", distribution.c_str());
    return kExitUsage;
  }
  options.workload.distribution = *parsed_distribution;
  if (!initial_balance.empty()) {
    auto money = wallex::Money::parse(initial_balance);
    if (!money) {
      std::fprintf(stderr, "wallex-bench: --initial-balance %s is not an amount\n",
                   initial_balance.c_str());
      return kExitUsage;
    }
    options.workload.initial_balance = money.value();
  }
  options.idempotency_keys = key_style == "random" ? KeyStyle::kRandom : KeyStyle::kOrdered;
  options.verify = !no_verify;
  options.progress = !quiet;
  options.run_id = run_id.empty() ? make_run_id(options.workload.seed) : run_id;
  if (auto problem = bench_options_problem(options)) {
    std::fprintf(stderr, "wallex-bench: %s\n", problem->c_str());
    return kExitUsage;
  }

  const BenchReport report = run_bench(options);
  print_report(stdout, report);
  std::fflush(stdout);
  if (!json_path.empty()) {
    std::ofstream file(json_path, std::ios::trunc);
    file << report_json(report) << '\n';
    if (!file) {
      std::fprintf(stderr, "wallex-bench: cannot write %s\n", json_path.c_str());
      return kExitFail;
    }
  }
  return report.passed() ? kExitPass : kExitFail;
}
