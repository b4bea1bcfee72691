// A real embedded store in a temporary directory, filled by deciding commands the way the
// service does, and the read side on top of it: the fixture of the projection tests.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "projection/projection_runner.h"
#include "projection/projectors.h"
#include "store/sqlite/sqlite_read_store.h"
#include "store/sqlite/sqlite_store.h"

namespace wallex::testing {

inline Money money(std::string_view text) { return Money::parse(text).value(); }

// Everything a ReadStore holds, for comparing two read sides.
struct ReadSideDump {
  std::vector<Checkpoint> checkpoints;
  std::vector<WalletState> read_wallets;
  std::vector<LedgerWallet> ledger_wallets;
  std::vector<EventWallet> event_wallets;
  std::vector<LedgerEntry> entries;
  std::vector<WalletEventRow> wallet_events;
  bool operator==(const ReadSideDump&) const = default;
};

inline ReadSideDump dump(ReadStore& store) {
  ReadSideDump out;
  out.checkpoints = store.checkpoints().value();
  std::sort(out.checkpoints.begin(), out.checkpoints.end(),
            [](const Checkpoint& a, const Checkpoint& b) { return a.projector < b.projector; });
  for (Checkpoint& c : out.checkpoints) c.updated_at_ms = 0;
  out.read_wallets = store.list_read_wallets("", std::nullopt, 1'000'000).value();
  out.ledger_wallets = store.scan_ledger_wallets("", 1'000'000).value();
  out.event_wallets = store.scan_event_wallets("", 1'000'000).value();
  out.entries = store.scan_entries(0, 1'000'000).value();
  out.wallet_events = store.scan_wallet_events(0, 1'000'000).value();
  return out;
}

class ProjectionFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "wallex-proj-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto store = SqliteStore::open(dir_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
  }
  // The store opened again on the same directory with other options (before any workload).
  void reopen_store(SqliteStore::OpenOptions options) {
    store_.reset();
    auto store = SqliteStore::open(dir_, options);
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
  }
  void TearDown() override {
    runner_.reset();
    read_.reset();
    log_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Decides and commits one command like the service; returns the last position, 0 if refused.
  std::int64_t run(const Command& command) {
    auto lookup = [this](std::string_view id) -> const WalletState* {
      const auto it = wallets_.find(std::string(id));
      return it == wallets_.end() ? nullptr : &it->second;
    };
    if (advance_clock_) now_ms_ += 7;
    auto events = decide(command, lookup, now_ms_);
    if (!events) return 0;
    CommitBatch batch;
    CommitBatch::Entry entry;
    entry.metadata.correlation_id = "corr-" + std::to_string(++commands_);
    if (commands_ % 2 == 0) entry.metadata.causation_id = "key-" + std::to_string(commands_);
    std::map<std::string, std::int64_t> expected;
    for (const Event& event : events.value()) {
      const auto it = wallets_.find(event.wallet_id);
      std::optional<WalletState> state;
      if (it != wallets_.end()) state = it->second;
      expected.emplace(event.wallet_id, state ? state->version : -1);
      wallets_[event.wallet_id] = wallex::apply(state, event);
      entry.events.push_back(event);
    }
    batch.entries.push_back(std::move(entry));
    for (const auto& [id, version] : expected) batch.wallets.push_back({wallets_.at(id), version});
    auto committed = write_only_ ? store_->write(batch) : store_->commit(batch);
    EXPECT_TRUE(committed.ok()) << (committed ? "" : committed.error().message);
    return committed ? committed.value().last_position : 0;
  }
  std::int64_t create(const std::string& id, std::string_view initial = "0",
                      const std::string& owner = "owner") {
    return run(CreateWallet{id, owner, money(initial)});
  }
  std::int64_t credit(const std::string& id, std::string_view amount,
                      std::optional<std::string> description = std::nullopt) {
    return run(CreditWallet{id, money(amount), std::move(description)});
  }
  std::int64_t debit(const std::string& id, std::string_view amount) {
    return run(DebitWallet{id, money(amount), std::nullopt});
  }
  std::int64_t transfer(const std::string& from, const std::string& to, std::string_view amount,
                        const std::string& transfer_id) {
    return run(TransferMoney{from, to, money(amount), std::nullopt, transfer_id});
  }
  // A deterministic mixed workload over `wallet_count` wallets.
  void workload(int wallet_count, int operations, std::uint64_t seed = 7) {
    for (int i = 0; i < wallet_count; ++i) {
      create("w" + std::to_string(i), i % 2 == 0 ? "100.50" : "0", "owner" + std::to_string(i % 3));
    }
    std::uint64_t state = seed;
    auto next = [&state] {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      return state >> 33;
    };
    for (int i = 0; i < operations; ++i) {
      const std::string a = "w" + std::to_string(next() % static_cast<std::uint64_t>(wallet_count));
      const std::string b = "w" + std::to_string(next() % static_cast<std::uint64_t>(wallet_count));
      const std::string amount =
          std::to_string(1 + next() % 40) + "." + std::to_string(next() % 10) + "5";
      switch (next() % 3) {
        case 0:
          credit(a, amount);
          break;
        case 1:
          debit(a, amount);
          break;
        default:
          transfer(a, b, amount, "t-" + std::to_string(i));
          break;
      }
    }
  }

  SqliteReadStore& read_store() {
    if (!read_) {
      auto opened = SqliteReadStore::open(dir_, SqliteReadStore::Access::kReadWrite);
      EXPECT_TRUE(opened.ok()) << (opened ? "" : opened.error().message);
      read_ = std::move(opened).value();
    }
    return *read_;
  }
  EventLog& log() {
    if (!log_) {
      auto opened = SqliteEventLog::open(dir_);
      EXPECT_TRUE(opened.ok()) << (opened ? "" : opened.error().message);
      log_ = std::move(opened).value();
    }
    return *log_;
  }
  ProjectionRunner& runner(RunnerOptions options = {},
                           std::vector<std::unique_ptr<Projector>> projectors = make_projectors()) {
    if (!runner_) {
      runner_ = std::make_unique<ProjectionRunner>(log(), read_store(), std::move(projectors),
                                                   clock_, options);
      EXPECT_TRUE(runner_->open().ok());
    }
    return *runner_;
  }
  void catch_up() {
    auto caught_up = runner().catch_up();
    ASSERT_TRUE(caught_up.ok()) << caught_up.error().message;
  }
  // Runs SQL directly against one of the files (tests that damage a store on purpose).
  void sql(const std::string& file, const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((std::filesystem::path(dir_) / file).c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &message);
    EXPECT_EQ(rc, SQLITE_OK) << (message ? message : "");
    sqlite3_free(message);
    sqlite3_close(db);
  }
  const WalletState& wallet(const std::string& id) const { return wallets_.at(id); }

  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<SqliteReadStore> read_;
  std::unique_ptr<SqliteEventLog> log_;
  std::unique_ptr<ProjectionRunner> runner_;
  ManualClock clock_{1'764'000'000'000};
  TimestampMs now_ms_ = 1'764'000'000'000;
  bool advance_clock_ = true;
  bool write_only_ = false;  // commands are written to the WAL but not synced (SqliteStore::write)
  int commands_ = 0;
  std::map<std::string, WalletState> wallets_;
};

}  // namespace wallex::testing
