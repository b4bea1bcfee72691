// wallex-sim: a deterministic simulation of the command core.
//
// One seed fixes everything: the commands a crowd of clients sends (creates, credits, debits,
// transfers; fresh, resent and reused idempotency keys; amounts at and beyond every limit), how
// many of them arrive together, which commits fail and how (disk full; an fsync error with nothing
// written; an fsync error after the transaction did reach the disk), clock jumps past the
// idempotency retention, and clean restarts. The service runs without its writer thread on an
// in-memory store behind a fault injector, and this program drives it one batch at a time.
//
// An auditor, written from DESIGN.md §2 and §4 rather than from the service's code, predicts
// every reply (status, error code, body, position, replayed flag) and after every step checks:
//   - the service's published state, the store's write model and a replay of the log all equal
//     the auditor's model of every wallet;
//   - the log has contiguous positions, contiguous per-wallet versions starting at 0, no balance
//     below zero or above the limit, and every transfer as an adjacent Initiated/Completed pair;
//   - total money equals initial balances plus credits minus debits of every durable command;
//   - the events handed over for the projector's feed (on_durable_events) are the log's, with the
//     documents a log reader gives, each once and in order: every event of the log except those
//     of a commit that failed after reaching the disk.
//
// A failure prints its seed and step; `--seed N` reproduces it exactly.
//
//   wallex-sim --seeds 1000 [--first-seed 1] [--steps 120]   many seeds, a summary line
//   wallex-sim --seed 42 [--steps 120] [--verbose]            one seed, every step narrated
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/id_generator.h"
#include "common/log.h"
#include "common/time_format.h"
#include "memory_store.h"
#include "service/wallet_service.h"
#include "store/event_codec.h"

namespace wallex::sim {
namespace {

using testing::CommitOutcome;
using testing::FaultyStore;
using testing::MemoryStore;

// The limits of DESIGN §2, in cents, restated so the auditor does not borrow the domain's.
constexpr std::int64_t kAmountMax = 1'000'000'000LL * 100;
constexpr std::int64_t kBalanceMax = 10'000'000'000LL * 100;

struct SimulationFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail_check(const std::string& what) { throw SimulationFailure(what); }

void check(bool condition, const std::string& what) {
  if (!condition) fail_check(what);
}

// Money as the API writes it in a JSON number: 12, 12.5, 12.05.
std::string json_money(std::int64_t minor) {
  std::string text = std::to_string(minor / 100);
  const std::int64_t cents = minor % 100;
  if (cents == 0) return text;
  text += '.';
  text += static_cast<char>('0' + cents / 10);
  if (cents % 10 != 0) text += static_cast<char>('0' + cents % 10);
  return text;
}

// ---------------------------------------------------------------------------------------------
// What a client sends.

enum class Kind { kCreate, kCredit, kDebit, kTransfer };

struct Request {
  Kind kind = Kind::kCreate;
  std::string wallet;  // the source of a transfer
  std::string to;      // transfers only
  std::string owner;   // creates only
  std::int64_t amount = 0;
  std::optional<std::string> description;
  std::optional<std::string> key;

  // Two requests are "the same request" for idempotency when this text is equal.
  std::string identity() const {
    std::string text = std::to_string(static_cast<int>(kind)) + "|" + wallet + "|" + to + "|" +
                       owner + "|" + std::to_string(amount) + "|";
    text += description ? "d:" + *description : "-";
    return text;
  }

  Command command() const {
    const Money money = Money::from_minor(amount);
    switch (kind) {
      case Kind::kCreate: return CreateWallet{wallet, owner, money};
      case Kind::kCredit: return CreditWallet{wallet, money, description};
      case Kind::kDebit: return DebitWallet{wallet, money, description};
      case Kind::kTransfer: return TransferMoney{wallet, to, money, description, {}};
    }
    return CreateWallet{};
  }

  std::string describe() const {
    static constexpr const char* kNames[] = {"create", "credit", "debit", "transfer"};
    std::string text = std::string(kNames[static_cast<int>(kind)]) + " " + wallet;
    if (kind == Kind::kTransfer) text += "->" + to;
    text += " " + std::to_string(amount);
    if (key) text += " key=" + *key;
    return text;
  }
};

// ---------------------------------------------------------------------------------------------
// The auditor's model.

struct ModelWallet {
  std::string owner;
  std::int64_t balance = 0;
  std::int64_t version = -1;
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
};

std::string snapshot_json(const std::string& id, const ModelWallet& w) {
  return "{\"id\":\"" + id + "\",\"ownerId\":\"" + w.owner + "\",\"balance\":" +
         json_money(w.balance) + ",\"version\":" + std::to_string(w.version) + ",\"createdAt\":\"" +
         format_iso8601_ms(w.created_at) + "\",\"updatedAt\":\"" + format_iso8601_ms(w.updated_at) +
         "\"}";
}

// A reply as the auditor expects it.
struct Expectation {
  int status = 0;
  std::string code;          // error replies: the stable error code
  std::string body;          // success replies: the whole body, or up to the transfer id
  bool transfer = false;     // body is a prefix followed by a 36-character transfer id and "\"}"
  std::int64_t position = 0;
  bool replayed = false;
};

// An idempotency record as the auditor remembers it.
struct KeyRecord {
  std::string identity;
  Expectation reply;                  // what the first execution answered (replayed = false)
  std::optional<std::string> body;    // the exact body, once a client has seen it
  TimestampMs created_at = 0;
};

Expectation error(int status, std::string code) {
  Expectation e;
  e.status = status;
  e.code = std::move(code);
  return e;
}

struct Model {
  std::map<std::string, ModelWallet> wallets;
  std::map<std::string, KeyRecord> keys;
  std::int64_t last_position = 0;
  std::int64_t money_in = 0;  // initial balances + credits - debits, durable commands only
};

// The decisions of one batch, not yet known to be durable.
struct Staged {
  std::map<std::string, ModelWallet> wallets;  // wallets touched in this batch
  std::map<std::string, KeyRecord> keys;       // records written in this batch
  std::int64_t position = 0;
  std::int64_t money_in = 0;
  bool writes = false;  // the batch has something to commit

  const ModelWallet* find(const Model& model, const std::string& id) const {
    if (const auto it = wallets.find(id); it != wallets.end()) return &it->second;
    if (const auto it = model.wallets.find(id); it != model.wallets.end()) return &it->second;
    return nullptr;
  }
};

// DESIGN §2's rules for one command against the staged state; applies the effect to `staged`.
Expectation decide(const Request& r, const Model& model, Staged& staged, TimestampMs now) {
  const auto amount_error = [&]() -> std::optional<Expectation> {
    if (r.amount <= 0) return error(400, "INVALID_AMOUNT");
    if (r.amount > kAmountMax) return error(400, "AMOUNT_TOO_LARGE");
    return std::nullopt;
  };
  const auto touch = [&](const std::string& id, const ModelWallet& before, std::int64_t delta) {
    ModelWallet next = before;
    next.balance += delta;
    next.version += 1;
    next.updated_at = now;
    staged.wallets[id] = next;
    staged.position += 1;
    return next;
  };
  Expectation ok;
  ok.status = 201;
  switch (r.kind) {
    case Kind::kCreate: {
      if (r.amount < 0) return error(400, "INVALID_AMOUNT");
      if (r.amount > kAmountMax) return error(400, "AMOUNT_TOO_LARGE");
      if (staged.find(model, r.wallet) != nullptr) return error(409, "WALLET_ALREADY_EXISTS");
      ModelWallet fresh{r.owner, 0, 0, now, now};
      staged.wallets[r.wallet] = fresh;
      staged.position += 1;
      if (r.amount > 0) fresh = touch(r.wallet, fresh, r.amount);
      staged.money_in += r.amount;
      ok.body = snapshot_json(r.wallet, fresh);
      break;
    }
    case Kind::kCredit:
    case Kind::kDebit: {
      if (auto e = amount_error()) return *e;
      const ModelWallet* wallet = staged.find(model, r.wallet);
      if (wallet == nullptr) return error(404, "WALLET_NOT_FOUND");
      const bool credit = r.kind == Kind::kCredit;
      if (credit && wallet->balance + r.amount > kBalanceMax) {
        return error(400, "BALANCE_LIMIT_EXCEEDED");
      }
      if (!credit && r.amount > wallet->balance) return error(400, "INSUFFICIENT_FUNDS");
      const std::int64_t delta = credit ? r.amount : -r.amount;
      ok.body = snapshot_json(r.wallet, touch(r.wallet, *wallet, delta));
      staged.money_in += delta;
      break;
    }
    case Kind::kTransfer: {
      if (r.wallet == r.to) return error(400, "SAME_WALLET_TRANSFER");
      if (auto e = amount_error()) return *e;
      const ModelWallet* from = staged.find(model, r.wallet);
      if (from == nullptr) return error(404, "WALLET_NOT_FOUND");
      const ModelWallet* to = staged.find(model, r.to);
      if (to == nullptr) return error(404, "WALLET_NOT_FOUND");
      if (r.amount > from->balance) return error(400, "INSUFFICIENT_FUNDS");
      if (to->balance + r.amount > kBalanceMax) return error(400, "BALANCE_LIMIT_EXCEEDED");
      const ModelWallet from_after = touch(r.wallet, *from, -r.amount);
      const ModelWallet to_after = touch(r.to, *staged.find(model, r.to), r.amount);
      ok.body = "{\"fromWallet\":" + snapshot_json(r.wallet, from_after) +
                ",\"toWallet\":" + snapshot_json(r.to, to_after) + ",\"transferId\":\"";
      ok.transfer = true;
      break;
    }
  }
  ok.position = staged.position;
  staged.writes = true;
  return ok;
}

void check_reply(const Reply& got, const Expectation& want, const std::optional<std::string>& exact,
                 const std::string& context) {
  const std::string where = context + ": ";
  check(got.status == want.status, where + "status " + std::to_string(got.status) + ", expected " +
                                       std::to_string(want.status) + " " + want.code + "; body " +
                                       got.body);
  check(got.replayed == want.replayed, where + "replayed flag is wrong");
  check(got.position == want.position, where + "position " + std::to_string(got.position) +
                                           ", expected " + std::to_string(want.position));
  if (exact) {
    check(got.body == *exact, where + "body " + got.body + ", expected the original " + *exact);
    return;
  }
  if (!want.code.empty()) {
    check(got.body.find("\"code\":\"" + want.code + "\"") != std::string::npos &&
              got.body.find("\"statusCode\":" + std::to_string(want.status)) != std::string::npos,
          where + "error body " + got.body + ", expected code " + want.code);
  } else if (want.transfer) {
    check(got.body.size() == want.body.size() + 36 + 2 && got.body.starts_with(want.body) &&
              got.body.ends_with("\"}"),
          where + "transfer body " + got.body + ", expected " + want.body + "<id>\"}");
  } else {
    check(got.body == want.body, where + "body " + got.body + ", expected " + want.body);
  }
}

// ---------------------------------------------------------------------------------------------
// One seed's run.

struct Totals {
  std::uint64_t commands = 0;
  std::uint64_t commits = 0;
  std::uint64_t replays = 0;
  std::uint64_t full = 0;
  std::uint64_t io_lost = 0;
  std::uint64_t io_written = 0;
  std::uint64_t restarts = 0;
  std::uint64_t overloaded = 0;
  std::uint64_t events = 0;
};

class Simulation {
 public:
  Simulation(std::uint64_t seed, int steps, bool verbose)
      : seed_(seed),
        steps_(steps),
        verbose_(verbose),
        random_(seed),
        clock_(1'764'000'000'000 + static_cast<TimestampMs>(seed % 1000) * 86'400'000),
        ids_(seed),
        faulty_(disk_, seed ^ 0x9e3779b97f4a7c15ULL, pick_odds()) {
    options_.run_writer_thread = false;
    options_.on_durable_events = [this](std::vector<LoggedEvent>&& events) {
      for (LoggedEvent& event : events) handed_.push_back(std::move(event));
    };
    options_.batch_commands_max = 1 + pick(0, 1) * pick(0, 15) + pick(0, 3);
    options_.queue_length_max = 4 + pick(0, 40);
    options_.idempotency_retention_ms = 2'000 + pick(0, 8'000);
    options_.purge_interval_ms = 500 + pick(0, 2'000);
    options_.purge_batch_max = 1 + pick(0, 20);
    wallet_pool_ = 2 + pick(0, 8);
    start_service();
  }

  void run(Totals& totals) {
    for (step_ = 1; step_ <= steps_; ++step_) {
      if (pick(0, 99) < 20) clock_.advance_ms(pick(0, 1) == 0 ? pick(1, 500) : pick(1, 6'000));
      if (pick(0, 99) < 3) {
        narrate("clean restart");
        restart();
      }
      run_step();
      check_invariants();
    }
    totals.commands += totals_.commands;
    totals.commits += totals_.commits;
    totals.replays += totals_.replays;
    totals.full += totals_.full;
    totals.io_lost += totals_.io_lost;
    totals.io_written += totals_.io_written;
    totals.restarts += totals_.restarts;
    totals.overloaded += totals_.overloaded;
    totals.events += static_cast<std::uint64_t>(model_.last_position);
  }

 private:
  std::uint64_t pick(std::uint64_t low, std::uint64_t high) {
    return std::uniform_int_distribution<std::uint64_t>(low, high)(random_);
  }

  FaultyStore::Odds pick_odds() {
    // A third of the seeds run fault-free, the rest with up to ~10% of commits failing.
    FaultyStore::Odds odds;
    if (pick(0, 2) == 0) return odds;
    odds.full = static_cast<double>(pick(0, 50)) / 1000.0;
    odds.io_lost = static_cast<double>(pick(0, 25)) / 1000.0;
    odds.io_but_written = static_cast<double>(pick(0, 25)) / 1000.0;
    return odds;
  }

  void narrate(const std::string& line) {
    if (verbose_) std::printf("  step %d: %s\n", step_, line.c_str());
  }

  void start_service() {
    service_ = std::make_unique<WalletService>(faulty_, clock_, ids_, options_);
    const auto started = service_->start();
    check(started.ok(), "the service did not start");
    // What it loaded from the write model is exactly the model.
    check(service_->health().wallet_count == model_.wallets.size(), "loaded wallet count differs");
    check(service_->health().last_position == model_.last_position, "loaded position differs");
  }

  void restart() {
    service_->stop();
    service_.reset();
    ++totals_.restarts;
    start_service();
    check_invariants();
  }

  std::string wallet_id() { return "w" + std::to_string(pick(0, wallet_pool_ - 1)); }

  std::int64_t amount() {
    const auto roll = pick(0, 99);
    if (roll < 75) return static_cast<std::int64_t>(pick(1, 20'000));
    if (roll < 80) return 0;
    if (roll < 83) return -static_cast<std::int64_t>(pick(1, 500));
    if (roll < 86) return kAmountMax + static_cast<std::int64_t>(pick(1, 100));
    if (roll < 96) return kAmountMax;  // walks balances towards the balance limit
    return static_cast<std::int64_t>(pick(1, 1'000'000'000));
  }

  Request fresh_request() {
    Request r;
    const auto roll = pick(0, 99);
    r.kind = roll < 15   ? Kind::kCreate
             : roll < 45 ? Kind::kCredit
             : roll < 70 ? Kind::kDebit
                         : Kind::kTransfer;
    r.wallet = wallet_id();
    r.amount = amount();
    if (r.kind == Kind::kCreate) {
      r.owner = "o" + std::to_string(pick(0, 3));
      if (pick(0, 2) == 0) r.amount = 0;
    }
    if (r.kind == Kind::kTransfer) r.to = pick(0, 19) == 0 ? r.wallet : wallet_id();
    if (r.kind != Kind::kCreate && pick(0, 1) == 0) {
      r.description = "d" + std::to_string(pick(0, 2));
    }
    return r;
  }

  Request next_request() {
    const auto roll = pick(0, 99);
    if (roll < 25 && !sent_with_key_.empty()) {
      // A client resending: the very same request under the same key.
      return sent_with_key_[pick(0, sent_with_key_.size() - 1)];
    }
    Request r = fresh_request();
    if (roll < 30 && !sent_with_key_.empty()) {
      // A different request reusing someone's key.
      r.key = sent_with_key_[pick(0, sent_with_key_.size() - 1)].key;
    } else if (roll < 80) {
      r.key = "k" + std::to_string(next_key_++);
    }
    if (r.key) sent_with_key_.push_back(r);
    return r;
  }

  void run_step() {
    const std::size_t count = pick(1, options_.queue_length_max + 3);
    std::vector<Request> requests;
    std::vector<std::optional<Reply>> replies(count);
    for (std::size_t i = 0; i < count; ++i) requests.push_back(next_request());

    const TimestampMs now = clock_.now_ms();
    narrate(std::to_string(count) + " commands arrive");
    for (std::size_t i = 0; i < count; ++i) {
      Request& r = requests[i];
      service_->submit(CommandRequest{r.command(), r.key, "sim-" + std::to_string(i)},
                       [&replies, i](Reply&& reply) {
                         check(!replies[i], "a command was answered twice");
                         replies[i] = std::move(reply);
                       });
    }
    totals_.commands += count;
    // Beyond the queue bound a command is refused on the spot.
    const std::size_t accepted = std::min(count, options_.queue_length_max);
    for (std::size_t i = accepted; i < count; ++i) {
      check(replies[i].has_value(), "an overflowing command was not refused at once");
      check_reply(*replies[i], error(503, "OVERLOADED"), std::nullopt, requests[i].describe());
      ++totals_.overloaded;
    }

    bool failed = false;  // the store failed fatally in an earlier batch of this step
    for (std::size_t begin = 0; begin < accepted; begin += options_.batch_commands_max) {
      const std::size_t end = std::min(accepted, begin + options_.batch_commands_max);
      faulty_.forget_outcome();
      const std::int64_t log_before = disk_.last_position().value();
      const std::size_t processed = service_->drive_once();
      if (faulty_.last_outcome() == CommitOutcome::kIoButWritten) {
        never_handed_ += disk_.last_position().value() - log_before;  // durable, never announced
      }
      check(processed == end - begin, "the writer took " + std::to_string(processed) +
                                          " commands, expected " + std::to_string(end - begin));
      for (std::size_t i = begin; i < end; ++i) {
        check(replies[i].has_value(), "a command of a processed batch has no reply");
      }
      if (failed) {
        for (std::size_t i = begin; i < end; ++i) {
          check_reply(*replies[i], error(503, "STORE_UNAVAILABLE"), std::nullopt,
                      "after a fatal failure: " + requests[i].describe());
        }
        continue;
      }
      failed = audit_batch(requests, replies, begin, end, now);
    }
    if (failed) {
      narrate("the store failed fatally: restarting, as a supervisor would");
      restart();
    }
  }

  // Predicts the batch [begin, end), compares every reply, and folds the durable effects into
  // the model. Returns true when the store failed fatally.
  bool audit_batch(const std::vector<Request>& requests,
                   const std::vector<std::optional<Reply>>& replies, std::size_t begin,
                   std::size_t end, TimestampMs now) {
    Staged staged;
    staged.position = model_.last_position;
    std::set<std::string> keys_in_batch;
    std::vector<std::optional<Expectation>> decided(end - begin);  // commands that reach the commit
    for (std::size_t i = begin; i < end; ++i) {
      const Request& r = requests[i];
      const std::string context = "step " + std::to_string(step_) + " " + r.describe();
      if (r.key) {
        if (keys_in_batch.contains(*r.key)) {
          check_reply(*replies[i], error(409, "IDEMPOTENCY_REQUEST_IN_FLIGHT"), std::nullopt, context);
          continue;
        }
        const auto record = model_.keys.find(*r.key);
        if (record != model_.keys.end() &&
            record->second.created_at + options_.idempotency_retention_ms > now) {
          if (record->second.identity == r.identity()) {
            Expectation replay = record->second.reply;
            replay.replayed = true;
            check_reply(*replies[i], replay, record->second.body, context + " (replay)");
            record->second.body = replies[i]->body;
            ++totals_.replays;
          } else {
            check_reply(*replies[i], error(409, "IDEMPOTENCY_KEY_REUSED"), std::nullopt, context);
          }
          continue;
        }
      }
      Expectation want = decide(r, model_, staged, now);
      if (r.key) {
        keys_in_batch.insert(*r.key);
        staged.keys[*r.key] = KeyRecord{r.identity(), want, std::nullopt, now};
        staged.writes = true;
      }
      decided[i - begin] = want;
    }

    const CommitOutcome outcome = faulty_.last_outcome();
    check(staged.writes == (outcome != CommitOutcome::kNone),
          "step " + std::to_string(step_) + ": the service " +
              (staged.writes ? "did not commit a batch that writes" : "committed a batch without writes"));
    const bool durable = outcome == CommitOutcome::kCommitted || outcome == CommitOutcome::kIoButWritten;
    const bool fatal = outcome == CommitOutcome::kIoLost || outcome == CommitOutcome::kIoButWritten;
    if (outcome == CommitOutcome::kCommitted) ++totals_.commits;
    if (outcome == CommitOutcome::kFull) ++totals_.full;
    if (outcome == CommitOutcome::kIoLost) ++totals_.io_lost;
    if (outcome == CommitOutcome::kIoButWritten) ++totals_.io_written;
    if (outcome != CommitOutcome::kNone && outcome != CommitOutcome::kCommitted) {
      narrate(outcome == CommitOutcome::kFull     ? "commit failed: disk full, nothing written"
              : outcome == CommitOutcome::kIoLost ? "commit failed: fsync error, nothing written"
                                                  : "commit failed: fsync error, yet durable");
    }

    for (std::size_t i = begin; i < end; ++i) {
      if (!decided[i - begin]) continue;
      const std::string context = "step " + std::to_string(step_) + " " + requests[i].describe();
      if (outcome == CommitOutcome::kCommitted || outcome == CommitOutcome::kNone) {
        check_reply(*replies[i], *decided[i - begin], std::nullopt, context);
        if (requests[i].key) staged.keys[*requests[i].key].body = replies[i]->body;
      } else {
        // Withdrawn: the client hears 503, whatever became of the transaction. A full disk rolled
        // it back and says so; after an I/O failure it may or may not be durable.
        const char* code = outcome == CommitOutcome::kFull ? "STORE_FULL" : "STORE_UNAVAILABLE";
        check_reply(*replies[i], error(503, code), std::nullopt, context);
      }
    }
    check(service_->health().store_failed == fatal, "store_failed flag does not match the fault");

    if (durable) {
      for (auto& [id, wallet] : staged.wallets) model_.wallets[id] = wallet;
      for (auto& [key, record] : staged.keys) model_.keys[key] = record;
      model_.last_position = staged.position;
      model_.money_in += staged.money_in;
    }
    return fatal;
  }

  void check_invariants() {
    const std::string where = "step " + std::to_string(step_) + ": ";
    // The published state equals the model (after a torn commit the service is failed and its
    // memory may lag; it is checked again after the restart).
    if (!service_->health().store_failed) {
      check(service_->health().wallet_count == model_.wallets.size(), where + "wallet count");
      check(service_->health().last_position == model_.last_position, where + "last position");
      for (const auto& [id, want] : model_.wallets) {
        const auto got = service_->find_wallet(id);
        check(got && got->balance.minor() == want.balance && got->version == want.version &&
                  got->owner_id == want.owner && got->created_at_ms == want.created_at &&
                  got->updated_at_ms == want.updated_at,
              where + "published state of " + id + " differs from the model");
      }
    }
    // The write model on disk equals the model.
    const auto stored = disk_.load_wallets().value();
    check(stored.size() == model_.wallets.size(), where + "write model wallet count");
    for (const WalletState& got : stored) {
      const auto want = model_.wallets.find(got.id);
      check(want != model_.wallets.end() && got.balance.minor() == want->second.balance &&
                got.version == want->second.version,
            where + "write model row of " + got.id + " differs from the model");
    }
    // The log, replayed from where the last check stopped, folds to the model.
    for (const StoredEvent& stored_event : disk_.read_events(replayed_position_, 1'000'000).value()) {
      const Event& e = stored_event.event;
      check(stored_event.position == replayed_position_ + 1, where + "log positions have a gap");
      replayed_position_ = stored_event.position;
      ModelWallet& w = replayed_[e.wallet_id];
      check(e.version == w.version + 1, where + "version gap in the log of " + e.wallet_id);
      check((e.version == 0) == (e.type == EventType::kWalletCreated),
            where + "a wallet's log must start with WalletCreated, once");
      w.version = e.version;
      const std::int64_t amount = e.amount.minor();
      switch (e.type) {
        case EventType::kWalletCreated: w.owner = e.owner_id; break;
        case EventType::kWalletCredited: w.balance += amount; replayed_money_ += amount; break;
        case EventType::kWalletDebited: w.balance -= amount; replayed_money_ -= amount; break;
        case EventType::kWalletTransferInitiated:
          check(!open_transfer_, where + "two Initiated events in a row");
          open_transfer_ = stored_event;
          w.balance -= amount;
          break;
        case EventType::kWalletTransferCompleted:
          check(open_transfer_ && open_transfer_->position + 1 == stored_event.position &&
                    open_transfer_->event.transfer_id == e.transfer_id &&
                    open_transfer_->event.amount == e.amount &&
                    open_transfer_->event.counterparty_id == e.wallet_id &&
                    e.counterparty_id == open_transfer_->event.wallet_id,
                where + "a transfer's two halves are not an adjacent matching pair");
          open_transfer_.reset();
          w.balance += amount;
          break;
      }
      check(w.balance >= 0 && w.balance <= kBalanceMax,
            where + "the log takes " + e.wallet_id + " outside [0, limit]");
    }
    check(!open_transfer_, where + "a transfer's Initiated event has no Completed half");
    check(replayed_position_ == model_.last_position, where + "log length differs from the model");
    std::int64_t total = 0;
    for (const auto& [id, want] : model_.wallets) {
      const auto got = replayed_.find(id);
      check(got != replayed_.end() && got->second.balance == want.balance &&
                got->second.version == want.version && got->second.owner == want.owner,
            where + "log replay of " + id + " differs from the model");
      total += want.balance;
    }
    check(replayed_.size() == model_.wallets.size(), where + "the log has wallets the model lacks");
    check(total == model_.money_in && replayed_money_ == model_.money_in,
          where + "money is not conserved");
    check_handed_events(where);
  }

  // The feed's events since the last check: the log's own, each once, in order.
  void check_handed_events(const std::string& where) {
    for (const LoggedEvent& handed : handed_) {
      check(handed.position > last_handed_,
            where + "an event was handed over twice or out of order");
      last_handed_ = handed.position;
      const auto logged = disk_.read_events(handed.position - 1, 1).value();
      check(logged.size() == 1 && logged.front().position == handed.position,
            where + "an event handed over is not in the log");
      const StoredEvent& stored = logged.front();
      check(static_cast<const StoredEvent&>(handed) == stored &&
                handed.data_json == encode_event_data(stored.event) &&
                handed.metadata_json == encode_event_metadata(stored.event, stored.metadata),
            where + "the event handed over at " + std::to_string(handed.position) +
                " differs from the log's");
      ++handed_total_;
    }
    handed_.clear();
    check(handed_total_ + never_handed_ == model_.last_position,
          where + "durable events were not handed over (" + std::to_string(handed_total_) +
              " handed, " + std::to_string(never_handed_) + " of failed commits, log at " +
              std::to_string(model_.last_position) + ")");
  }

  const std::uint64_t seed_;
  const int steps_;
  const bool verbose_;
  std::mt19937_64 random_;
  ManualClock clock_;
  RandomIdGenerator ids_;
  MemoryStore disk_;
  FaultyStore faulty_;
  ServiceOptions options_;
  std::unique_ptr<WalletService> service_;
  std::uint64_t wallet_pool_ = 0;
  int step_ = 0;

  Model model_;
  std::vector<Request> sent_with_key_;
  std::uint64_t next_key_ = 0;
  Totals totals_;

  // The events handed over for the feed, not checked yet; checked ones; the last one's position;
  // events of commits that failed after reaching the disk (in the log, never announced).
  std::vector<LoggedEvent> handed_;
  std::int64_t handed_total_ = 0;
  std::int64_t last_handed_ = 0;
  std::int64_t never_handed_ = 0;

  // The auditor's own replay of the log.
  std::map<std::string, ModelWallet> replayed_;
  std::int64_t replayed_position_ = 0;
  std::int64_t replayed_money_ = 0;
  std::optional<StoredEvent> open_transfer_;
};

int usage() {
  std::fprintf(stderr,
               "usage: wallex-sim [--seed N | --seeds COUNT [--first-seed N]] [--steps N] "
               "[--verbose]\n");
  return 2;
}

}  // namespace
}  // namespace wallex::sim

int main(int argc, char** argv) {
  using namespace wallex::sim;
  std::uint64_t first_seed = 1;
  std::uint64_t seeds = 1;
  int steps = 120;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::optional<std::uint64_t> {
      if (i + 1 >= argc) return std::nullopt;
      char* end = nullptr;
      const unsigned long long parsed = std::strtoull(argv[++i], &end, 10);
      if (end == nullptr || *end != '\0') return std::nullopt;
      return parsed;
    };
    std::optional<std::uint64_t> v;
    if (arg == "--verbose") {
      verbose = true;
      continue;
    }
    if (arg != "--seed" && arg != "--seeds" && arg != "--first-seed" && arg != "--steps") {
      return usage();
    }
    if (!(v = value())) return usage();
    if (arg == "--seed") {
      first_seed = *v;
      seeds = 1;
    } else if (arg == "--seeds") {
      seeds = *v;
    } else if (arg == "--first-seed") {
      first_seed = *v;
    } else {
      steps = static_cast<int>(*v);
    }
  }
  // Injected failures log errors by design; only the verdict matters here.
  wallex::log::set_level(wallex::log::Level::kSilent);

  Totals totals;
  for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
    if (verbose) std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    try {
      Simulation simulation(seed, steps, verbose);
      simulation.run(totals);
    } catch (const SimulationFailure& failure) {
      std::fprintf(stderr,
                   "wallex-sim: seed %llu FAILED: %s\n  reproduce: wallex-sim --seed %llu "
                   "--steps %d --verbose\n",
                   static_cast<unsigned long long>(seed), failure.what(),
                   static_cast<unsigned long long>(seed), steps);
      return 1;
    }
  }
  std::printf(
      "wallex-sim: %llu seeds x %d steps passed: %llu commands, %llu commits, %llu replays "
      "verified, %llu overloaded, faults injected: %llu disk-full, %llu fsync-lost, %llu "
      "fsync-after-write; %llu restarts; %llu events audited\n",
      static_cast<unsigned long long>(seeds), steps,
      static_cast<unsigned long long>(totals.commands),
      static_cast<unsigned long long>(totals.commits),
      static_cast<unsigned long long>(totals.replays),
      static_cast<unsigned long long>(totals.overloaded),
      static_cast<unsigned long long>(totals.full),
      static_cast<unsigned long long>(totals.io_lost),
      static_cast<unsigned long long>(totals.io_written),
      static_cast<unsigned long long>(totals.restarts),
      static_cast<unsigned long long>(totals.events));
  return 0;
}
