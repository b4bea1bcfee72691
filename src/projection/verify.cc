#include "projection/verify.h"

#include <array>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/check.h"
#include "common/time_format.h"
#include "domain/replay.h"
#include "store/event_codec.h"

namespace wallex {
namespace {

// What the ledger must hold for a money event, stated here from the contract (DESIGN §2,
// docs/http-api.md) rather than taken from the projector's own mapping, so a mistake in that
// mapping shows up as a difference instead of being reproduced.
LedgerEntry expected_entry(const LoggedEvent& stored, std::int64_t wallet_key, Money before,
                           Money after) {
  const Event& event = stored.event;
  struct Rule {
    EventType event;
    EntryType entry;
    bool transfer;
  };
  static constexpr Rule kRules[] = {
      {EventType::kWalletCredited, EntryType::kCredit, false},
      {EventType::kWalletDebited, EntryType::kDebit, false},
      {EventType::kWalletTransferInitiated, EntryType::kTransferOut, true},
      {EventType::kWalletTransferCompleted, EntryType::kTransferIn, true},
  };
  const Rule* rule = nullptr;
  for (const Rule& candidate : kRules) {
    if (candidate.event == event.type) rule = &candidate;
  }
  WALLEX_CHECK(rule != nullptr);  // called for money events only
  LedgerEntry entry;
  entry.position = stored.position;
  entry.wallet_id = event.wallet_id;
  entry.wallet_key = wallet_key;
  entry.version = event.version;
  entry.type = rule->entry;
  entry.amount = event.amount;
  entry.balance_before = before;
  entry.balance_after = after;
  entry.description = event.description;
  // A transfer's two entries share the transfer id and name each other; a credit or a debit is
  // its own reference, "<walletId>:<version>".
  entry.reference_id =
      rule->transfer ? event.transfer_id : event.wallet_id + ":" + std::to_string(event.version);
  if (rule->transfer) entry.related_wallet_id = event.counterparty_id;
  entry.metadata = stored.metadata_json;
  entry.created_at_ms = event.occurred_at_ms;
  return entry;
}

// Reads a table in position order, one batch at a time, for a merge with the log.
template <typename Row>
class Cursor {
 public:
  using Fetch = std::function<Result<std::vector<Row>, StoreError>(std::int64_t, std::size_t)>;
  Cursor(Fetch fetch, std::size_t batch) : fetch_(std::move(fetch)), batch_(batch) {}

  // The next row, or nullptr at the end.
  Result<const Row*, StoreError> peek() {
    if (next_ < rows_.size()) return &rows_[next_];
    if (done_) return static_cast<const Row*>(nullptr);
    auto fetched = fetch_(after_, batch_);
    if (!fetched) return fail(fetched.error());
    rows_ = std::move(fetched).value();
    next_ = 0;
    if (rows_.empty()) {
      done_ = true;
      return static_cast<const Row*>(nullptr);
    }
    after_ = rows_.back().position;
    return &rows_[0];
  }
  void pop() { ++next_; }

 private:
  Fetch fetch_;
  std::size_t batch_;
  std::vector<Row> rows_;
  std::size_t next_ = 0;
  std::int64_t after_ = 0;
  bool done_ = false;
};

std::string money_text(std::int64_t minor) { return Money::from_minor(minor).to_fixed2(); }

template <typename T>
void field(std::string& out, std::string_view name, const T& stored, const T& replayed) {
  if (stored == replayed) return;
  out += out.empty() ? "" : ", ";
  out += std::string(name) + " is ";
  if constexpr (std::is_same_v<T, Money>) {
    out += stored.to_fixed2() + ", replay says " + replayed.to_fixed2();
  } else if constexpr (std::is_same_v<T, std::optional<std::string>>) {
    out += (stored ? "\"" + *stored + "\"" : "null") + ", replay says " +
           (replayed ? "\"" + *replayed + "\"" : "null");
  } else if constexpr (std::is_same_v<T, std::string>) {
    out += "\"" + stored + "\", replay says \"" + replayed + "\"";
  } else if constexpr (std::is_same_v<T, EntryType>) {
    out += std::string(entry_type_name(stored)) + ", replay says " +
           std::string(entry_type_name(replayed));
  } else if constexpr (std::is_same_v<T, EventType>) {
    out += std::string(event_type_name(stored)) + ", replay says " +
           std::string(event_type_name(replayed));
  } else {
    out += std::to_string(stored) + ", replay says " + std::to_string(replayed);
  }
}

std::string wallet_differences(const WalletState& stored, const WalletState& replayed) {
  std::string out;
  field(out, "ownerId", stored.owner_id, replayed.owner_id);
  field(out, "balance", stored.balance, replayed.balance);
  field(out, "version", stored.version, replayed.version);
  field(out, "createdAt", stored.created_at_ms, replayed.created_at_ms);
  field(out, "updatedAt", stored.updated_at_ms, replayed.updated_at_ms);
  return out;
}

class Verifier {
 public:
  Verifier(EventLog& log, ReadStore* read, const VerifyOptions& options)
      : log_(log), read_(read), options_(options) {}

  Result<VerifyReport, StoreError> run() {
    if (read_ != nullptr) {
      if (auto s = read_->begin_read(); !s) return fail(s.error());
    }
    auto result = run_in_snapshots();
    if (read_ != nullptr) read_->end_read();
    log_.end_snapshot();
    if (!result) return fail(result.error());
    return std::move(report_);
  }

 private:
  struct Replayed {
    std::optional<WalletState> state;
    std::int64_t key = 0;            // position of its WalletCreated
    std::int64_t credits_minor = 0;  // ledger view: CREDIT + TRANSFER_IN
    std::int64_t debits_minor = 0;   // DEBIT + TRANSFER_OUT
    std::int64_t entry_count = 0;
  };
  struct PendingTransfer {
    std::int64_t position;
    Event event;
  };

  void differ(std::string line) {
    ++report_.difference_count;
    if (report_.differences.size() < options_.differences_shown) {
      report_.differences.push_back(std::move(line));
    }
  }
  void note(std::string line) { report_.summary.push_back(std::move(line)); }

  // -1: do not compare (no read side, or a checkpoint beyond the log).
  std::int64_t checkpoint_of(ProjectorId id) const { return checkpoints_[projector_index(id)]; }

  Status<StoreError> run_in_snapshots() {
    checkpoints_.fill(-1);
    if (read_ != nullptr) {
      auto stored = read_->checkpoints();
      if (!stored) return fail(stored.error());
      checkpoints_.fill(0);
      for (const Checkpoint& c : stored.value())
        checkpoints_[projector_index(c.projector)] = c.position;
    } else {
      differ("read side: read.db is missing (start the server or run wallex rebuild)");
    }
    if (auto s = log_.begin_snapshot(); !s) return s;
    auto head = log_.last_position();
    if (!head) return fail(head.error());
    head_ = head.value();
    for (const ProjectorId id : kAllProjectors) {
      const std::int64_t cp = checkpoint_of(id);
      if (cp > head_) {
        differ(std::string(projector_name(id)) + ": checkpoint " + std::to_string(cp) +
               " is beyond the log head " + std::to_string(head_) +
               " (read.db belongs to another store?)");
        checkpoints_[projector_index(id)] = -1;
      }
    }

    if (auto s = at_position(0); !s) return s;
    std::int64_t previous = 0;
    while (true) {
      auto read = log_.read_events(previous, options_.batch_events);
      if (!read) return fail(read.error());
      if (read.value().empty()) break;
      for (const LoggedEvent& stored : read.value()) {
        if (stored.position != previous + 1) {
          differ("log: position " + std::to_string(stored.position) + " follows " +
                 std::to_string(previous) + " (the embedded log has no gaps)");
        }
        previous = stored.position;
        ++events_;
        if (auto s = check_event(stored); !s) return s;
        if (auto s = at_position(stored.position); !s) return s;
      }
    }
    if (pending_transfer_) {
      differ("log: transfer " + pending_transfer_->event.transfer_id + " at position " +
             std::to_string(pending_transfer_->position) + " has no WalletTransferCompleted");
    }
    if (auto s = finish_cursors(); !s) return s;
    if (read_ != nullptr) {
      auto problems = read_->index_problems(options_.differences_shown);
      if (!problems) return fail(problems.error());
      for (const std::string& problem : problems.value()) differ("read side index: " + problem);
    }
    if (auto s = check_write_model(); !s) return s;
    check_money();
    summarize();
    return Ok{};
  }

  Status<StoreError> check_event(const LoggedEvent& stored) {
    const Event& event = stored.event;
    const std::string where = "log: position " + std::to_string(stored.position) + " (wallet " +
                              event.wallet_id + " version " + std::to_string(event.version) + ")";
    check_transfer_pairing(stored);

    Replayed& wallet = wallets_[event.wallet_id];
    const Money before = wallet.state ? wallet.state->balance : Money();
    auto next = replay(wallet.state, event);
    if (!next) {
      differ(where + ": " + next.error());
      return Ok{};
    }
    wallet.state = std::move(next).value();
    const Money after = wallet.state->balance;
    std::optional<LedgerEntry> entry;
    if (event.type == EventType::kWalletCreated) {
      ++wallet_count_;
      wallet.key = stored.position;
    } else {
      entry = expected_entry(stored, wallet.key, before, after);
      const bool adds = entry_adds(entry->type);
      const std::int64_t amount = event.amount.minor();
      std::int64_t& ledger_total = adds ? wallet.credits_minor : wallet.debits_minor;
      bool overflow = __builtin_add_overflow(ledger_total, amount, &ledger_total);
      ++wallet.entry_count;
      if (event.type == EventType::kWalletCredited) {
        overflow = __builtin_add_overflow(credits_minor_, amount, &credits_minor_) || overflow;
      } else if (event.type == EventType::kWalletDebited) {
        overflow = __builtin_add_overflow(debits_minor_, amount, &debits_minor_) || overflow;
      }
      if (overflow) differ(where + ": a total overflows 64 bits");
    }
    if (stored.position <= checkpoint_of(ProjectorId::kLedger)) {
      if (auto s = compare_entry(stored, entry); !s) return s;
    }
    if (stored.position <= checkpoint_of(ProjectorId::kWalletEvents)) {
      WalletEventRow row;
      row.position = stored.position;
      row.wallet_id = event.wallet_id;
      row.wallet_key = wallet.key;
      row.version = event.version;
      row.type = event.type;
      row.data = stored.data_json;
      row.metadata = stored.metadata_json;
      row.occurred_at_ms = event.occurred_at_ms;
      row.balance_after = after;
      if (auto s = compare_wallet_event(row); !s) return s;
    }
    return Ok{};
  }

  void check_transfer_pairing(const LoggedEvent& stored) {
    const Event& event = stored.event;
    if (pending_transfer_) {
      const PendingTransfer out = *pending_transfer_;
      pending_transfer_.reset();
      const bool paired = event.type == EventType::kWalletTransferCompleted &&
                          event.transfer_id == out.event.transfer_id &&
                          event.wallet_id == out.event.counterparty_id &&
                          event.counterparty_id == out.event.wallet_id &&
                          event.amount == out.event.amount;
      if (!paired) {
        differ("log: transfer " + out.event.transfer_id + " at position " +
               std::to_string(out.position) +
               ": the next event is not its matching WalletTransferCompleted");
      } else {
        ++transfers_;
        return;
      }
    }
    if (event.type == EventType::kWalletTransferCompleted) {
      differ("log: WalletTransferCompleted " + event.transfer_id + " at position " +
             std::to_string(stored.position) + " does not follow its WalletTransferInitiated");
    }
    if (event.type == EventType::kWalletTransferInitiated) {
      pending_transfer_ = PendingTransfer{stored.position, event};
    }
  }

  Status<StoreError> compare_entry(const LoggedEvent& stored,
                                   const std::optional<LedgerEntry>& expected) {
    while (true) {
      auto row = entries_.peek();
      if (!row) return fail(row.error());
      const LedgerEntry* entry = row.value();
      if (entry == nullptr || entry->position > stored.position) break;
      if (entry->position < stored.position || !expected) {
        differ("ledger: entry at position " + std::to_string(entry->position) +
               " belongs to no money event");
        entries_.pop();
        continue;
      }
      std::string out;
      field(out, "walletId", entry->wallet_id, expected->wallet_id);
      field(out, "walletKey", entry->wallet_key, expected->wallet_key);
      field(out, "version", entry->version, expected->version);
      field(out, "transactionType", entry->type, expected->type);
      field(out, "amount", entry->amount, expected->amount);
      field(out, "balanceBefore", entry->balance_before, expected->balance_before);
      field(out, "balanceAfter", entry->balance_after, expected->balance_after);
      field(out, "description", entry->description, expected->description);
      field(out, "referenceId", entry->reference_id, expected->reference_id);
      field(out, "relatedWalletId", entry->related_wallet_id, expected->related_wallet_id);
      field(out, "metadata", entry->metadata, expected->metadata);
      field(out, "createdAt", entry->created_at_ms, expected->created_at_ms);
      if (!out.empty()) {
        differ("ledger: entry " + entry_id_for_position(entry->position) + " (position " +
               std::to_string(entry->position) + "): " + out);
      }
      ++entries_checked_;
      entries_.pop();
      return Ok{};
    }
    if (expected) {
      differ("ledger: no entry for the event at position " + std::to_string(stored.position) +
             " (wallet " + expected->wallet_id + " version " + std::to_string(expected->version) +
             ")");
    }
    return Ok{};
  }

  Status<StoreError> compare_wallet_event(const WalletEventRow& expected) {
    while (true) {
      auto row = wallet_events_.peek();
      if (!row) return fail(row.error());
      const WalletEventRow* stored = row.value();
      if (stored == nullptr || stored->position > expected.position) break;
      if (stored->position < expected.position) {
        differ("walletEvents: row at position " + std::to_string(stored->position) +
               " has no event in the log");
        wallet_events_.pop();
        continue;
      }
      std::string out;
      field(out, "walletId", stored->wallet_id, expected.wallet_id);
      field(out, "walletKey", stored->wallet_key, expected.wallet_key);
      field(out, "version", stored->version, expected.version);
      field(out, "type", stored->type, expected.type);
      field(out, "data", stored->data, expected.data);
      field(out, "metadata", stored->metadata, expected.metadata);
      field(out, "occurredAt", stored->occurred_at_ms, expected.occurred_at_ms);
      field(out, "balanceAfter", stored->balance_after, expected.balance_after);
      if (!out.empty()) {
        differ("walletEvents: position " + std::to_string(stored->position) + ": " + out);
      }
      ++wallet_events_checked_;
      wallet_events_.pop();
      return Ok{};
    }
    differ("walletEvents: no row for the event at position " + std::to_string(expected.position));
    return Ok{};
  }

  // Rows left after the merge lie beyond the last event their projection has seen.
  Status<StoreError> finish_cursors() {
    if (checkpoint_of(ProjectorId::kLedger) >= 0) {
      while (true) {
        auto row = entries_.peek();
        if (!row) return fail(row.error());
        if (row.value() == nullptr) break;
        differ("ledger: entry at position " + std::to_string(row.value()->position) +
               " is beyond the ledger checkpoint or the log");
        entries_.pop();
      }
    }
    if (checkpoint_of(ProjectorId::kWalletEvents) >= 0) {
      while (true) {
        auto row = wallet_events_.peek();
        if (!row) return fail(row.error());
        if (row.value() == nullptr) break;
        differ("walletEvents: row at position " + std::to_string(row.value()->position) +
               " is beyond the walletEvents checkpoint or the log");
        wallet_events_.pop();
      }
    }
    return Ok{};
  }

  // Compares the state tables of the projections whose checkpoint is `position`.
  Status<StoreError> at_position(std::int64_t position) {
    if (position == checkpoint_of(ProjectorId::kReadModel)) {
      if (auto s = compare_read_model(); !s) return s;
    }
    if (position == checkpoint_of(ProjectorId::kLedger)) {
      if (auto s = compare_ledger_wallets(); !s) return s;
    }
    if (position == checkpoint_of(ProjectorId::kWalletEvents)) {
      if (auto s = compare_event_wallets(); !s) return s;
    }
    return Ok{};
  }

  Status<StoreError> compare_event_wallets() {
    std::unordered_set<std::string> seen;
    std::string after;
    while (true) {
      auto rows = read_->scan_event_wallets(after, options_.batch_events);
      if (!rows) return fail(rows.error());
      if (rows.value().empty()) break;
      for (const EventWallet& row : rows.value()) {
        seen.insert(row.wallet_id);
        const auto it = wallets_.find(row.wallet_id);
        if (it == wallets_.end() || !it->second.state) {
          differ("walletEvents: state of wallet " + row.wallet_id +
                 " that does not exist in the log");
          continue;
        }
        std::string out;
        field(out, "walletKey", row.wallet_key, it->second.key);
        field(out, "version", row.version, it->second.state->version);
        field(out, "balance", row.balance, it->second.state->balance);
        if (!out.empty()) differ("walletEvents: state of wallet " + row.wallet_id + ": " + out);
      }
      after = rows.value().back().wallet_id;
    }
    for (const auto& [id, wallet] : wallets_) {
      if (wallet.state && !seen.contains(id)) {
        differ("walletEvents: state of wallet " + id + " is missing");
      }
    }
    return Ok{};
  }

  Status<StoreError> compare_read_model() {
    std::unordered_set<std::string> seen;
    std::string after;
    while (true) {
      auto rows = read_->list_read_wallets(after, std::nullopt, options_.batch_events);
      if (!rows) return fail(rows.error());
      if (rows.value().empty()) break;
      for (const WalletState& row : rows.value()) {
        seen.insert(row.id);
        const auto it = wallets_.find(row.id);
        if (it == wallets_.end() || !it->second.state) {
          differ("readModel: wallet " + row.id + " does not exist in the log");
          continue;
        }
        const std::string out = wallet_differences(row, *it->second.state);
        if (!out.empty()) differ("readModel: wallet " + row.id + ": " + out);
      }
      after = rows.value().back().id;
    }
    for (const auto& [id, wallet] : wallets_) {
      if (wallet.state && !seen.contains(id)) differ("readModel: wallet " + id + " is missing");
    }
    read_model_rows_ = static_cast<std::int64_t>(seen.size());
    return Ok{};
  }

  Status<StoreError> compare_ledger_wallets() {
    std::unordered_set<std::string> seen;
    std::string after;
    while (true) {
      auto rows = read_->scan_ledger_wallets(after, options_.batch_events);
      if (!rows) return fail(rows.error());
      if (rows.value().empty()) break;
      for (const LedgerWallet& row : rows.value()) {
        seen.insert(row.wallet_id);
        const auto it = wallets_.find(row.wallet_id);
        if (it == wallets_.end() || !it->second.state) {
          differ("ledger: totals of wallet " + row.wallet_id + " that does not exist in the log");
          continue;
        }
        const Replayed& replayed = it->second;
        std::string out;
        field(out, "walletKey", row.wallet_key, replayed.key);
        field(out, "version", row.version, replayed.state->version);
        field(out, "balance", row.balance, replayed.state->balance);
        field(out, "totalCredits", row.credits_minor, replayed.credits_minor);
        field(out, "totalDebits", row.debits_minor, replayed.debits_minor);
        field(out, "transactionCount", row.entry_count, replayed.entry_count);
        if (!out.empty()) differ("ledger: totals of wallet " + row.wallet_id + ": " + out);
      }
      after = rows.value().back().wallet_id;
    }
    for (const auto& [id, wallet] : wallets_) {
      if (wallet.state && !seen.contains(id))
        differ("ledger: totals of wallet " + id + " are missing");
    }
    return Ok{};
  }

  Status<StoreError> check_write_model() {
    auto loaded = log_.load_wallets();
    if (!loaded) return fail(loaded.error());
    std::int64_t balances_minor = 0;
    std::unordered_set<std::string> seen;
    for (const WalletState& row : loaded.value()) {
      seen.insert(row.id);
      if (row.balance.minor() < 0 || row.balance.minor() > Money::kBalanceMaxMinor) {
        differ("write model: wallet " + row.id + " has balance " + row.balance.to_fixed2() +
               " outside [0, limit]");
      }
      balances_minor += row.balance.minor();
      const auto it = wallets_.find(row.id);
      if (it == wallets_.end() || !it->second.state) {
        differ("write model: wallet " + row.id + " does not exist in the log");
        continue;
      }
      const std::string out = wallet_differences(row, *it->second.state);
      if (!out.empty()) differ("write model: wallet " + row.id + ": " + out);
    }
    for (const auto& [id, wallet] : wallets_) {
      if (wallet.state && !seen.contains(id)) differ("write model: wallet " + id + " is missing");
    }
    write_model_rows_ = static_cast<std::int64_t>(loaded.value().size());
    write_model_balances_minor_ = balances_minor;
    return Ok{};
  }

  void check_money() {
    std::int64_t balances_minor = 0;
    for (const auto& [id, wallet] : wallets_) {
      if (wallet.state) balances_minor += wallet.state->balance.minor();
    }
    replay_balances_minor_ = balances_minor;
    if (balances_minor != credits_minor_ - debits_minor_) {
      differ("money: replayed balances sum to " + money_text(balances_minor) +
             " but credits − debits = " + money_text(credits_minor_ - debits_minor_));
    }
    if (write_model_balances_minor_ != balances_minor) {
      differ("money: write-model balances sum to " + money_text(write_model_balances_minor_) +
             ", the replay to " + money_text(balances_minor));
    }
  }

  void summarize() {
    note("log: " + std::to_string(events_) + " events (head " + std::to_string(head_) + "), " +
         std::to_string(wallet_count_) + " wallets, " + std::to_string(transfers_) + " transfers");
    note("money: credits " + money_text(credits_minor_) + " - debits " + money_text(debits_minor_) +
         " = balances " + money_text(replay_balances_minor_));
    note("write model: " + std::to_string(write_model_rows_) + " wallets compared with the replay");
    for (const ProjectorId id : kAllProjectors) {
      const std::int64_t cp = checkpoint_of(id);
      if (cp < 0) {
        note(std::string(projector_name(id)) + ": not compared");
        continue;
      }
      std::string line = std::string(projector_name(id)) + ": at position " + std::to_string(cp);
      if (cp < head_)
        line += " (" + std::to_string(head_ - cp) + " events behind the log; compared up to there)";
      switch (id) {
        case ProjectorId::kReadModel:
          line += ", " + std::to_string(read_model_rows_) + " wallets compared";
          break;
        case ProjectorId::kLedger:
          line += ", " + std::to_string(entries_checked_) + " entries compared";
          break;
        case ProjectorId::kWalletEvents:
          line += ", " + std::to_string(wallet_events_checked_) + " events compared";
          break;
      }
      note(line);
    }
  }

  EventLog& log_;
  ReadStore* read_;
  const VerifyOptions& options_;
  VerifyReport report_;
  std::array<std::int64_t, kProjectorCount> checkpoints_{};
  std::int64_t head_ = 0;
  std::unordered_map<std::string, Replayed> wallets_;
  std::optional<PendingTransfer> pending_transfer_;
  Cursor<LedgerEntry> entries_{
      [this](std::int64_t after, std::size_t limit) { return read_->scan_entries(after, limit); },
      options_.batch_events};
  Cursor<WalletEventRow> wallet_events_{[this](std::int64_t after, std::size_t limit) {
                                          return read_->scan_wallet_events(after, limit);
                                        },
                                        options_.batch_events};
  std::int64_t events_ = 0, wallet_count_ = 0, transfers_ = 0;
  std::int64_t credits_minor_ = 0, debits_minor_ = 0;
  std::int64_t replay_balances_minor_ = 0, write_model_balances_minor_ = 0, write_model_rows_ = 0;
  std::int64_t read_model_rows_ = 0, entries_checked_ = 0, wallet_events_checked_ = 0;
};

}  // namespace

Result<VerifyReport, StoreError> verify(EventLog& log, ReadStore* read_store,
                                        const VerifyOptions& options) {
  Verifier verifier(log, read_store, options);
  return verifier.run();
}

}  // namespace wallex
