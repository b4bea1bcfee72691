// The write model of wallex.db as it stands: the wallets table is a snapshot as of the position in
// the write_model table, written a slice per commit (SqliteStore::write), and the log's events
// after that position are replayed onto it, passing over those a row written ahead of it by a
// snapshot under way (the table snapshot_under_way) already holds. Used by SqliteStore at open and
// by the read side's SqliteEventLog (`wallex verify`), which reads the same file on a connection of
// its own.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "domain/wallet.h"
#include "store/store.h"

struct sqlite3;

namespace wallex {

class SqliteStatement;

// Binds a wallet's columns as ?1..?6 in the order both databases keep them: id, owner_id,
// balance_minor, version, created_at_ms, updated_at_ms.
void bind_wallet_columns(SqliteStatement& statement, const WalletState& wallet);

// Every wallet: the snapshot's rows with the changed states over them, by id.
std::vector<WalletState> current_wallets(
    const std::vector<WalletState>& snapshot,
    const std::unordered_map<std::string, WalletState>& changed);

struct WriteModelImage {
  std::int64_t snapshot_position = 0;
  std::vector<WalletState> snapshot;                     // the wallets table, by id
  std::unordered_map<std::string, WalletState> changed;  // after snapshot_position, replayed
  std::vector<WalletState> wallets() const { return current_wallets(snapshot, changed); }
};

// Reads the snapshot and replays the events after it, in one read transaction (or in the
// caller's). A file of schema version 1 has no snapshot position: its rows are the whole log.
// kCorrupt when an event after the snapshot does not replay onto it.
Result<WriteModelImage, StoreError> read_write_model(sqlite3* db);

}  // namespace wallex
