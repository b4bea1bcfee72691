#include "bench/bench_run.h"

#include <atomic>
#include <cstdio>
#include <limits>

#include "bench/http_request.h"
#include "bench/load_runner.h"
#include "bench/random.h"
#include "bench/replies.h"
#include "common/id_generator.h"
#include "domain/ids.h"
#include "json/json_writer.h"

namespace wallex::bench {
namespace {

constexpr std::size_t kRunIdLengthMax = 100;  // leaves room for "-w<index>" within 128

// State one engine thread owns during a phase.
struct ThreadState {
  PhaseStats stats;
  EffectRecorder recorder;
  ReplyDecoder decoder;
  std::vector<std::string> problems;
};

// What every phase shares: per-thread state, the host header, and a failure count for progress.
class PhaseSource : public RequestSource {
 public:
  PhaseSource(const BenchOptions& options, std::string name)
      : options_(options),
        name_(std::move(name)),
        host_(options.endpoint.authority()),
        threads_(static_cast<std::size_t>(options.threads)) {}

  void on_failure(int thread, std::uint64_t index, TransportFailure failure,
                  std::int64_t) override {
    state(thread).stats.outcomes.add(
        OutcomeKey{type_of(index), 0, std::string(transport_failure_code(failure))},
        OutcomeClass::kFailure);
    failures_.fetch_add(1, std::memory_order_relaxed);
    unknown_outcome(thread, index);
  }

  std::uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }
  std::vector<ThreadState>& threads() { return threads_; }

  PhaseReport report(const LoadResult& result) const {
    PhaseReport report;
    report.name = name_;
    report.requests = result.completed;
    report.elapsed_us = result.elapsed_us;
    for (const ThreadState& t : threads_) report.stats.merge(t.stats);
    return report;
  }

 protected:
  virtual OperationType type_of(std::uint64_t index) const = 0;
  // A request whose effect is unknown (it may have been applied).
  virtual void unknown_outcome(int thread, std::uint64_t index) = 0;

  ThreadState& state(int thread) { return threads_[static_cast<std::size_t>(thread)]; }

  // Records a reply; returns its class. `code` overrides the body's error code (a broken 2xx).
  OutcomeClass count(int thread, OperationType type, const HttpReply& reply,
                     std::int64_t latency_us, std::string code) {
    ThreadState& t = state(thread);
    t.stats.latency[static_cast<std::size_t>(type)].record(latency_us);
    const OutcomeClass outcome = classify_reply(type, reply.status, code);
    t.stats.outcomes.add(OutcomeKey{type, reply.status, std::move(code)}, outcome);
    if (outcome == OutcomeClass::kFailure) failures_.fetch_add(1, std::memory_order_relaxed);
    return outcome;
  }

  void append_post(std::string& out, std::string_view target, std::string_view key,
                   std::string_view body) const {
    append_http_request(out, HttpRequestParts{"POST", target, host_, key, body});
  }
  void append_get(std::string& out, std::string_view target) const {
    append_http_request(out, HttpRequestParts{"GET", target, host_, {}, {}});
  }

  const BenchOptions& options_;

 private:
  std::string name_;
  std::string host_;
  std::vector<ThreadState> threads_;
  std::atomic<std::uint64_t> failures_{0};
};

// The status the contract promises for this operation (201 for commands, 200 for reads).
bool is_success(OperationType type, int status) {
  return classify_reply(type, status, "") == OutcomeClass::kSuccess;
}

// Phase 1: POST /wallets for each wallet.
class CreatePhase final : public PhaseSource {
 public:
  CreatePhase(const BenchOptions& options, const Workload& workload)
      : PhaseSource(options, "create wallets"), workload_(workload) {}

  void write_request(std::uint64_t index, std::string& out) override {
    const auto wallet = static_cast<std::uint32_t>(index);
    JsonWriter body;
    body.begin_object()
        .key("walletId")
        .string(wallet_id(options_.run_id, wallet))
        .key("ownerId")
        .string(options_.run_id + "-o" + std::to_string(wallet))
        .key("initialBalance")
        .number_text(workload_.initial_balance(wallet).to_json_number())
        .end_object();
    append_post(out, "/wallets", options_.run_id + "-create-" + std::to_string(index), body.text());
  }

  void on_reply(int thread, std::uint64_t index, const HttpReply& reply,
                std::int64_t latency_us) override {
    const auto wallet = static_cast<std::uint32_t>(index);
    if (!is_success(OperationType::kCreate, reply.status)) {
      count(thread, OperationType::kCreate, reply, latency_us,
            state(thread).decoder.error_code(reply.body));
      return;
    }
    auto snapshot = state(thread).decoder.wallet_snapshot(reply.body);
    std::string problem;
    if (!snapshot) {
      problem = snapshot.error();
    } else if (snapshot.value().id != wallet_id(options_.run_id, wallet)) {
      problem = "reply names wallet " + snapshot.value().id;
    }
    if (!problem.empty()) {
      state(thread).problems.push_back("create wallet #" + std::to_string(wallet) + ": " + problem);
      count(thread, OperationType::kCreate, reply, latency_us, std::string(kBadReplyBodyCode));
      unknown_outcome(thread, index);
      return;
    }
    count(thread, OperationType::kCreate, reply, latency_us, "");
    state(thread).recorder.created(wallet, workload_.initial_balance(wallet), snapshot.value());
  }

 private:
  OperationType type_of(std::uint64_t) const override { return OperationType::kCreate; }
  void unknown_outcome(int thread, std::uint64_t index) override {
    Operation create;
    create.type = OperationType::kCreate;
    create.wallet = static_cast<std::uint32_t>(index);
    state(thread).recorder.outcome_unknown(create);
  }

  const Workload& workload_;
};

// Phase 2: the scenario's operations.
class OperationPhase final : public PhaseSource {
 public:
  OperationPhase(const BenchOptions& options, const Workload& workload)
      : PhaseSource(options, "operations"), workload_(workload) {}

  void write_request(std::uint64_t index, std::string& out) override {
    const Operation op = workload_.operation(index);
    const std::string key = operation_key(options_, index);
    JsonWriter body;
    switch (op.type) {
      case OperationType::kCredit:
      case OperationType::kDebit: {
        const bool credit = op.type == OperationType::kCredit;
        body.begin_object()
            .key("amount")
            .number_text(op.amount.to_json_number())
            .key("description")
            .string(credit ? "Load test credit" : "Load test debit")
            .end_object();
        const std::string target =
            "/wallets/" + wallet_id(options_.run_id, op.wallet) + (credit ? "/credit" : "/debit");
        return append_post(out, target, key, body.text());
      }
      case OperationType::kTransfer: {
        body.begin_object()
            .key("toWalletId")
            .string(wallet_id(options_.run_id, op.other_wallet))
            .key("amount")
            .number_text(op.amount.to_json_number())
            .key("description")
            .string("Load test transfer")
            .end_object();
        return append_post(out, "/wallets/" + wallet_id(options_.run_id, op.wallet) + "/transfer",
                           key, body.text());
      }
      case OperationType::kRead:
        return append_get(out, "/wallets/" + wallet_id(options_.run_id, op.wallet));
      case OperationType::kHealth:
        return append_get(out, "/health");
      case OperationType::kCreate:
        break;
    }
    WALLEX_CHECK(false);  // phase 2 never creates wallets
  }

  void on_reply(int thread, std::uint64_t index, const HttpReply& reply,
                std::int64_t latency_us) override {
    const Operation op = workload_.operation(index);
    if (!is_success(op.type, reply.status)) {
      count(thread, op.type, reply, latency_us, state(thread).decoder.error_code(reply.body));
      return;
    }
    std::string problem = record_effect(thread, op, reply);
    if (!problem.empty()) {
      state(thread).problems.push_back(std::string(operation_name(op.type)) + " #" +
                                       std::to_string(index) + ": " + problem);
      count(thread, op.type, reply, latency_us, std::string(kBadReplyBodyCode));
      unknown_outcome(thread, index);
      return;
    }
    count(thread, op.type, reply, latency_us, "");
  }

 private:
  OperationType type_of(std::uint64_t index) const override {
    return workload_.operation(index).type;
  }
  void unknown_outcome(int thread, std::uint64_t index) override {
    state(thread).recorder.outcome_unknown(workload_.operation(index));
  }

  // Decodes a successful reply and records what it proves; returns a problem, or "" when the
  // body keeps the contract.
  std::string record_effect(int thread, const Operation& op, const HttpReply& reply) {
    EffectRecorder& recorder = state(thread).recorder;
    switch (op.type) {
      case OperationType::kCredit:
      case OperationType::kDebit:
      case OperationType::kRead: {
        auto snapshot = state(thread).decoder.wallet_snapshot(reply.body);
        if (!snapshot) return snapshot.error();
        if (snapshot.value().id != wallet_id(options_.run_id, op.wallet)) {
          return "reply names wallet " + snapshot.value().id;
        }
        if (op.type == OperationType::kCredit)
          recorder.credited(op.wallet, op.amount, snapshot.value());
        if (op.type == OperationType::kDebit)
          recorder.debited(op.wallet, op.amount, snapshot.value());
        return "";
      }
      case OperationType::kTransfer: {
        auto transfer = state(thread).decoder.transfer_reply(reply.body);
        if (!transfer) return transfer.error();
        if (transfer.value().from.id != wallet_id(options_.run_id, op.wallet) ||
            transfer.value().to.id != wallet_id(options_.run_id, op.other_wallet)) {
          return "reply names wallets " + transfer.value().from.id + " -> " +
                 transfer.value().to.id;
        }
        recorder.transferred(op.wallet, op.other_wallet, op.amount, transfer.value());
        return "";
      }
      case OperationType::kHealth:
        return "";
      case OperationType::kCreate:
        break;
    }
    return "unexpected operation";
  }

  const Workload& workload_;
};

// Phase 3: GET /wallets/{id} for every wallet.
class ReadBackPhase final : public PhaseSource {
 public:
  ReadBackPhase(const BenchOptions& options, std::size_t wallet_count)
      : PhaseSource(options, "read back"), read_back_(wallet_count) {}

  void write_request(std::uint64_t index, std::string& out) override {
    append_get(out, "/wallets/" + wallet_id(options_.run_id, static_cast<std::uint32_t>(index)));
  }

  void on_reply(int thread, std::uint64_t index, const HttpReply& reply,
                std::int64_t latency_us) override {
    const auto wallet = static_cast<std::uint32_t>(index);
    const std::string name = "read wallet #" + std::to_string(wallet) + ": ";
    if (!is_success(OperationType::kRead, reply.status)) {
      const std::string code = state(thread).decoder.error_code(reply.body);
      state(thread).problems.push_back(name + "status " + std::to_string(reply.status) + " " +
                                       code);
      count(thread, OperationType::kRead, reply, latency_us, code);
      return;
    }
    auto snapshot = state(thread).decoder.wallet_snapshot(reply.body);
    std::string problem = snapshot ? "" : snapshot.error();
    if (snapshot && snapshot.value().id != wallet_id(options_.run_id, wallet)) {
      problem = "reply names wallet " + snapshot.value().id;
    }
    if (!problem.empty()) {
      state(thread).problems.push_back(name + problem);
      count(thread, OperationType::kRead, reply, latency_us, std::string(kBadReplyBodyCode));
      return;
    }
    // Each index is read by exactly one thread, and the vector is not resized: no data race.
    read_back_[wallet] = std::move(snapshot).value();
    count(thread, OperationType::kRead, reply, latency_us, "");
  }

  std::vector<std::optional<WalletSnapshot>>& read_back() { return read_back_; }

 private:
  OperationType type_of(std::uint64_t) const override { return OperationType::kRead; }
  void unknown_outcome(int thread, std::uint64_t index) override {
    state(thread).problems.push_back("read wallet #" + std::to_string(index) + ": no reply");
  }

  std::vector<std::optional<WalletSnapshot>> read_back_;
};

// Runs one phase with a progress line; returns its report, or nullopt after adding an error.
std::optional<PhaseReport> run_phase(const BenchOptions& options, const LoadPlan& plan,
                                     PhaseSource& phase, std::vector<std::string>& errors) {
  std::uint64_t previous_completed = 0;
  std::int64_t previous_us = 0;
  const ProgressTick tick = [&](std::uint64_t completed, std::int64_t elapsed_us) {
    if (!options.progress) return;
    const double window_s = static_cast<double>(elapsed_us - previous_us) / 1e6;
    const double rate =
        window_s > 0 ? static_cast<double>(completed - previous_completed) / window_s : 0;
    std::fprintf(stderr, "[%s] %6.1f s  %llu done  %.0f req/s  %llu failed\n", phase.name().c_str(),
                 static_cast<double>(elapsed_us) / 1e6, static_cast<unsigned long long>(completed),
                 rate, static_cast<unsigned long long>(phase.failures()));
    previous_completed = completed;
    previous_us = elapsed_us;
  };
  auto result = run_load(options.endpoint, plan, phase, tick);
  if (!result) {
    errors.push_back(phase.name() + ": " + result.error());
    return std::nullopt;
  }
  for (ThreadState& t : phase.threads()) {
    for (std::string& problem : t.problems) errors.push_back(std::move(problem));
    t.problems.clear();
  }
  return phase.report(result.value());
}

LoadPlan closed_loop(const BenchOptions& options, std::uint64_t requests) {
  LoadPlan plan;
  plan.request_count = requests;
  plan.connections = options.workers;
  plan.threads = options.threads;
  plan.timeout_ms = options.timeout_ms;
  return plan;
}

}  // namespace

std::string wallet_id(const std::string& run_id, std::uint32_t index) {
  return run_id + "-w" + std::to_string(index);
}

std::string operation_key(const BenchOptions& options, std::uint64_t index) {
  if (options.idempotency_keys == KeyStyle::kOrdered) {
    return options.run_id + "-op-" + std::to_string(index);
  }
  // FNV-1a of the run id picks the stream family, the index the stream: 122 random bits.
  std::uint64_t run_hash = 14695981039346656037ULL;
  for (const char c : options.run_id) {
    run_hash = (run_hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  SplitMix64 random = SplitMix64::for_stream(run_hash, index);
  const std::uint64_t high = random.next();
  return version4_uuid(high, random.next());
}

std::optional<std::string> bench_options_problem(const BenchOptions& options) {
  if (auto problem = workload_problem(options.workload)) return problem;
  if (options.run_id.empty() || options.run_id.size() > kRunIdLengthMax ||
      !is_valid_id(options.run_id)) {
    return "run id must be 1-" + std::to_string(kRunIdLengthMax) +
           " characters of [A-Za-z0-9._:@-]";
  }
  if (options.workers < 1 || options.workers > 100'000)
    return std::string("--workers must be 1-100000");
  if (options.threads < 1 || options.threads > 256) return std::string("--threads must be 1-256");
  if (options.timeout_ms < 1) return std::string("--timeout-ms must be positive");
  if (options.rate_per_second < 0 || options.duration_s < 0) {
    return std::string("--rate and --duration must not be negative");
  }
  if (options.rate_per_second > 0 && options.duration_s <= 0) {
    return std::string("--rate needs --duration (seconds)");
  }
  if (options.rate_per_second > 0 && options.rate_per_second * options.duration_s > 1e9) {
    return std::string("--rate x --duration is more than 1e9 requests");
  }
  return std::nullopt;
}

double PhaseReport::requests_per_second() const {
  return elapsed_us > 0 ? static_cast<double>(requests) * 1e6 / static_cast<double>(elapsed_us) : 0;
}

std::uint64_t BenchReport::failures() const {
  std::uint64_t total = 0;
  for (const auto* phase : {&create, &operations, &read_back}) {
    if (*phase) total += (*phase)->stats.outcomes.count(OutcomeClass::kFailure);
  }
  return total;
}

bool BenchReport::passed() const {
  if (!errors.empty() || failures() > 0 || !operations) return false;
  if (!options.verify) return true;
  return verification.has_value() && verification->passed();
}

BenchReport run_bench(const BenchOptions& options) {
  BenchReport report;
  report.options = options;
  if (auto problem = bench_options_problem(options)) {
    report.errors.push_back(*problem);
    return report;
  }
  const Workload workload(options.workload);
  const std::uint32_t wallet_count = workload.uses_wallets() ? options.workload.wallet_count : 0;
  std::vector<Money> initial_balances;
  initial_balances.reserve(wallet_count);
  for (std::uint32_t w = 0; w < wallet_count; ++w)
    initial_balances.push_back(workload.initial_balance(w));
  VerificationModel model(std::move(initial_balances));

  if (wallet_count > 0) {
    CreatePhase create(options, workload);
    report.create = run_phase(options, closed_loop(options, wallet_count), create, report.errors);
    for (const ThreadState& t : create.threads()) model.absorb(t.recorder);
    if (!report.create || report.create->stats.outcomes.count(OutcomeClass::kFailure) > 0) {
      report.errors.push_back("wallet creation failed; operations not run");
      return report;
    }
  }

  LoadPlan plan = closed_loop(options, options.operations);
  if (options.rate_per_second > 0) {
    plan.rate_per_second = options.rate_per_second;
    plan.request_count = static_cast<std::uint64_t>(options.rate_per_second * options.duration_s);
  } else if (options.duration_s > 0) {
    plan.request_count = std::numeric_limits<std::uint64_t>::max();
    plan.duration_ms = static_cast<std::int64_t>(options.duration_s * 1000.0);
  }
  OperationPhase operations(options, workload);
  report.operations = run_phase(options, plan, operations, report.errors);
  for (const ThreadState& t : operations.threads()) model.absorb(t.recorder);
  if (!report.operations || !options.verify) return report;

  ReadBackPhase read_back(options, wallet_count);
  std::vector<std::string> read_problems;
  if (wallet_count > 0) {
    report.read_back =
        run_phase(options, closed_loop(options, wallet_count), read_back, read_problems);
  }
  report.verification = model.verify(read_back.read_back(), read_problems);
  return report;
}

}  // namespace wallex::bench
