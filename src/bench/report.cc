#include "bench/report.h"

#include "json/json_writer.h"

namespace wallex::bench {
namespace {

constexpr OperationType kAllTypes[] = {OperationType::kCreate, OperationType::kCredit,
                                       OperationType::kDebit,  OperationType::kTransfer,
                                       OperationType::kRead,   OperationType::kHealth};

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string ms(std::int64_t us) { return fixed(static_cast<double>(us) / 1000.0, 3); }

const LatencyHistogram& histogram(const PhaseReport& phase, OperationType type) {
  return phase.stats.latency[static_cast<std::size_t>(type)];
}

LatencyHistogram all_types(const PhaseReport& phase) {
  LatencyHistogram all;
  for (const LatencyHistogram& h : phase.stats.latency) all.merge(h);
  return all;
}

std::uint64_t requests_of(const PhaseReport& phase, OperationType type) {
  const OutcomeCounts& o = phase.stats.outcomes;
  return o.count(type, OutcomeClass::kSuccess) + o.count(type, OutcomeClass::kRejected) +
         o.count(type, OutcomeClass::kFailure);
}

// The health scenario creates no wallet, whatever --wallets says.
std::uint32_t wallets_used(const BenchOptions& options) {
  return options.workload.scenario == Scenario::kHealth ? 0 : options.workload.wallet_count;
}

std::string mode_text(const BenchOptions& options) {
  if (options.rate_per_second > 0) {
    return "open loop at " + fixed(options.rate_per_second, 0) + " req/s for " +
           fixed(options.duration_s, 1) + " s";
  }
  if (options.duration_s > 0) return "closed loop for " + fixed(options.duration_s, 1) + " s";
  return "closed loop, " + std::to_string(options.operations) + " operations";
}

void print_latency_row(std::FILE* out, std::string_view label, std::uint64_t ok,
                       std::uint64_t rejected, std::uint64_t failed, const LatencyHistogram& h) {
  // No reply at all (only transport failures): there is no latency to show.
  const auto cell = [&h](std::int64_t us) { return h.count() == 0 ? std::string("-") : ms(us); };
  std::fprintf(out, "  %-9.*s %9llu %9llu %7llu %9s %9s %9s %9s %9s\n",
               static_cast<int>(label.size()), label.data(), static_cast<unsigned long long>(ok),
               static_cast<unsigned long long>(rejected), static_cast<unsigned long long>(failed),
               cell(h.percentile_us(50)).c_str(), cell(h.percentile_us(90)).c_str(),
               cell(h.percentile_us(99)).c_str(), cell(h.percentile_us(99.9)).c_str(),
               cell(h.max_us()).c_str());
}

void print_phase(std::FILE* out, const PhaseReport& phase) {
  std::fprintf(out, "\n%s: %llu requests in %s s = %s req/s\n", phase.name.c_str(),
               static_cast<unsigned long long>(phase.requests),
               fixed(static_cast<double>(phase.elapsed_us) / 1e6, 3).c_str(),
               fixed(phase.requests_per_second(), 0).c_str());
  std::fprintf(out, "  %-9s %9s %9s %7s %9s %9s %9s %9s %9s\n", "operation", "ok", "rejected",
               "failed", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
  const OutcomeCounts& o = phase.stats.outcomes;
  int types = 0;
  for (OperationType type : kAllTypes) {
    if (requests_of(phase, type) == 0) continue;
    ++types;
    print_latency_row(out, operation_name(type), o.count(type, OutcomeClass::kSuccess),
                      o.count(type, OutcomeClass::kRejected), o.count(type, OutcomeClass::kFailure),
                      histogram(phase, type));
  }
  if (types > 1) {
    print_latency_row(out, "all", o.count(OutcomeClass::kSuccess), o.count(OutcomeClass::kRejected),
                      o.count(OutcomeClass::kFailure), all_types(phase));
  }
  std::fprintf(out, "  outcomes by status and code:\n");
  for (const OutcomeCounts::Entry& e : o.entries()) {
    const std::string_view name = operation_name(e.key.type);
    const char* note = e.outcome == OutcomeClass::kRejected  ? "  (correct business outcome)"
                       : e.outcome == OutcomeClass::kFailure ? "  FAILURE"
                                                             : "";
    std::fprintf(out, "    %-9.*s %3d %-24s %9llu%s\n", static_cast<int>(name.size()), name.data(),
                 e.key.status, e.key.code.empty() ? "-" : e.key.code.c_str(),
                 static_cast<unsigned long long>(e.count), note);
  }
}

void print_verification(std::FILE* out, const BenchReport& report) {
  if (!report.options.verify) {
    std::fprintf(out, "\nverification: skipped (--no-verify)\n");
    return;
  }
  if (!report.verification) {
    std::fprintf(out, "\nverification: could not run\n");
    return;
  }
  const VerificationReport& v = report.verification.value();
  std::fprintf(out, "\nverification: %s\n", v.passed() ? "PASSED" : "FAILED");
  std::fprintf(out, "  wallets read back: %zu, exact (balance and version): %zu, uncertain: %zu\n",
               v.wallets_checked, v.wallets_exact, v.wallets_uncertain);
  std::fprintf(out, "  acknowledged changes checked as per-wallet histories: %zu\n",
               v.observations);
  std::fprintf(out,
               "  total money %s (expected %s = initial %s + credits %s - debits %s; transfers "
               "moved %s)\n",
               v.actual_total.to_fixed2().c_str(), v.expected_total.to_fixed2().c_str(),
               v.initial_total.to_fixed2().c_str(), v.credits_total.to_fixed2().c_str(),
               v.debits_total.to_fixed2().c_str(), v.transfers_total.to_fixed2().c_str());
  if (v.wallets_uncertain > 0) {
    std::fprintf(out, "  %zu wallets were touched by requests of unknown outcome\n",
                 v.wallets_uncertain);
  }
  for (const std::string& problem : v.problems)
    std::fprintf(out, "  problem: %s\n", problem.c_str());
  if (v.problem_count > v.problems.size()) {
    std::fprintf(out, "  ... and %zu more problems\n", v.problem_count - v.problems.size());
  }
}

void write_histogram(JsonWriter& json, const LatencyHistogram& h) {
  json.begin_object();
  json.key("count").integer(static_cast<std::int64_t>(h.count()));
  json.key("p50").integer(h.percentile_us(50));
  json.key("p90").integer(h.percentile_us(90));
  json.key("p99").integer(h.percentile_us(99));
  json.key("p999").integer(h.percentile_us(99.9));
  json.key("max").integer(h.max_us());
  json.key("mean").number_text(fixed(h.mean_us(), 1));
  json.end_object();
}

void write_phase(JsonWriter& json, const PhaseReport& phase) {
  const OutcomeCounts& o = phase.stats.outcomes;
  json.begin_object();
  json.key("requests").integer(static_cast<std::int64_t>(phase.requests));
  json.key("elapsedSeconds").number_text(fixed(static_cast<double>(phase.elapsed_us) / 1e6, 6));
  json.key("requestsPerSecond").number_text(fixed(phase.requests_per_second(), 1));
  json.key("success").integer(static_cast<std::int64_t>(o.count(OutcomeClass::kSuccess)));
  json.key("rejected").integer(static_cast<std::int64_t>(o.count(OutcomeClass::kRejected)));
  json.key("failed").integer(static_cast<std::int64_t>(o.count(OutcomeClass::kFailure)));
  json.key("latencyUs").begin_object();
  for (OperationType type : kAllTypes) {
    if (requests_of(phase, type) == 0) continue;
    json.key(operation_name(type));
    write_histogram(json, histogram(phase, type));
  }
  json.key("all");
  write_histogram(json, all_types(phase));
  json.end_object();
  json.key("outcomes").begin_array();
  for (const OutcomeCounts::Entry& e : o.entries()) {
    json.begin_object();
    json.key("operation").string(operation_name(e.key.type));
    json.key("status").integer(e.key.status);
    json.key("code").string(e.key.code);
    json.key("class").string(outcome_class_name(e.outcome));
    json.key("count").integer(static_cast<std::int64_t>(e.count));
    json.end_object();
  }
  json.end_array();
  json.end_object();
}

}  // namespace

void print_report(std::FILE* out, const BenchReport& report) {
  const BenchOptions& options = report.options;
  std::fprintf(out,
               "wallex-bench %s: scenario %s, distribution %s, %u wallets, %s, %d connections on "
               "%d thread(s), seed %llu\n",
               options.run_id.c_str(),
               std::string(scenario_name(options.workload.scenario)).c_str(),
               std::string(distribution_name(options.workload.distribution)).c_str(),
               wallets_used(options), mode_text(options).c_str(), options.workers, options.threads,
               static_cast<unsigned long long>(options.workload.seed));
  for (const auto* phase : {&report.create, &report.operations, &report.read_back}) {
    if (*phase) print_phase(out, **phase);
  }
  if (report.operations) {
    std::fprintf(out, "\nthroughput (operations phase): %s ops/s\n",
                 fixed(report.operations->requests_per_second(), 0).c_str());
  }
  print_verification(out, report);
  for (const std::string& error : report.errors) std::fprintf(out, "error: %s\n", error.c_str());
  std::fprintf(out, "\nresult: %s\n", report.passed() ? "PASS" : "FAIL");
}

std::string report_json(const BenchReport& report) {
  const BenchOptions& options = report.options;
  JsonWriter json;
  json.begin_object();
  json.key("runId").string(options.run_id);
  json.key("url").string("http://" + options.endpoint.authority());
  json.key("scenario").string(scenario_name(options.workload.scenario));
  json.key("distribution").string(distribution_name(options.workload.distribution));
  json.key("zipfS").number_text(fixed(options.workload.zipf_s, 4));
  json.key("wallets").integer(wallets_used(options));
  json.key("workers").integer(options.workers);
  json.key("threads").integer(options.threads);
  json.key("seed").integer(static_cast<std::int64_t>(options.workload.seed));
  json.key("mode").string(options.rate_per_second > 0 ? "open" : "closed");
  json.key("rate").number_text(fixed(options.rate_per_second, 1));
  json.key("durationSeconds").number_text(fixed(options.duration_s, 3));
  json.key("operationsRequested").integer(static_cast<std::int64_t>(options.operations));
  json.key("phases").begin_object();
  if (report.create) write_phase(json.key("create"), *report.create);
  if (report.operations) write_phase(json.key("operations"), *report.operations);
  if (report.read_back) write_phase(json.key("readBack"), *report.read_back);
  json.end_object();
  json.key("verification").begin_object();
  json.key("enabled").boolean(options.verify);
  json.key("ran").boolean(report.verification.has_value());
  if (report.verification) {
    const VerificationReport& v = *report.verification;
    json.key("passed").boolean(v.passed());
    json.key("walletsChecked").integer(static_cast<std::int64_t>(v.wallets_checked));
    json.key("walletsExact").integer(static_cast<std::int64_t>(v.wallets_exact));
    json.key("walletsUncertain").integer(static_cast<std::int64_t>(v.wallets_uncertain));
    json.key("observations").integer(static_cast<std::int64_t>(v.observations));
    json.key("initialTotal").number_text(v.initial_total.to_json_number());
    json.key("creditsTotal").number_text(v.credits_total.to_json_number());
    json.key("debitsTotal").number_text(v.debits_total.to_json_number());
    json.key("transfersTotal").number_text(v.transfers_total.to_json_number());
    json.key("expectedTotal").number_text(v.expected_total.to_json_number());
    json.key("actualTotal").number_text(v.actual_total.to_json_number());
    json.key("problemCount").integer(static_cast<std::int64_t>(v.problem_count));
    json.key("problems").begin_array();
    for (const std::string& problem : v.problems) json.string(problem);
    json.end_array();
  }
  json.end_object();
  json.key("errors").begin_array();
  for (const std::string& error : report.errors) json.string(error);
  json.end_array();
  json.key("failures").integer(static_cast<std::int64_t>(report.failures()));
  json.key("passed").boolean(report.passed());
  json.end_object();
  return json.take();
}

}  // namespace wallex::bench
