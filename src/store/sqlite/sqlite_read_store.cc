#include "store/sqlite/sqlite_read_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <array>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <system_error>
#include <thread>
#include <tuple>

#include "store/event_codec.h"
#include "store/read_side_columns.h"
#include "store/sqlite/sqlite_error.h"
#include "store/sqlite/sqlite_statement.h"
#include "store/sqlite/wal_checkpointer.h"
#include "store/sqlite/write_model.h"
#include "store/sqlite/sqlite_store.h"

namespace wallex {
namespace {

// The consumer-group projectors' own tables (kafka/consumer_state_store.h). Not part of the
// rebuildable schema: a rebuild never touches them, and they are only written by `wallex
// project`, in the transaction of the rows they describe.
constexpr const char* kConsumerTables = R"sql(
CREATE TABLE IF NOT EXISTS consumer_offsets (
  group_id    TEXT    NOT NULL,
  topic       TEXT    NOT NULL,
  partition_id INTEGER NOT NULL CHECK (partition_id >= 0),
  next_offset INTEGER NOT NULL CHECK (next_offset >= 0),
  PRIMARY KEY (group_id, topic, partition_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumer_wallets (
  group_id  TEXT    NOT NULL,
  wallet_id TEXT    NOT NULL,
  version   INTEGER NOT NULL CHECK (version >= 0),
  PRIMARY KEY (group_id, wallet_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumer_dead_letters (
  group_id  TEXT    NOT NULL,
  topic     TEXT    NOT NULL,
  partition_id INTEGER NOT NULL,
  message_offset INTEGER NOT NULL,
  attempts  INTEGER NOT NULL,
  error     TEXT    NOT NULL,
  at_ms     INTEGER NOT NULL,
  PRIMARY KEY (group_id, topic, partition_id, message_offset)
) WITHOUT ROWID;
)sql";

// 'WXRD': marks read.db, so a foreign SQLite file is refused at open.
constexpr int kReadApplicationId = 0x57585244;
// 'WALX': the write store (see sqlite_store.cc).
constexpr int kStoreApplicationId = 0x57414C58;

// Tables; `$` is replaced by a schema prefix and `%` by a suffix: ("", "") for the live tables,
// ("", "_next") while a rebuild fills fresh tables beside a running server, ("rebuild.", "")
// while an offline rebuild fills a fresh file (see begin_rebuild). The type CHECK is an OR chain
// on purpose: `type IN (...)` makes SQLite build a temporary table on every insert (it was a
// third of the cost of writing an entry).
constexpr const char* kTables = R"sql(
CREATE TABLE $read_wallets% (
  id            TEXT    PRIMARY KEY,
  owner_id      TEXT    NOT NULL,
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
  version       INTEGER NOT NULL CHECK (version >= 0),
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE $ledger_wallets% (
  wallet_id     TEXT    PRIMARY KEY,
  wallet_key    INTEGER NOT NULL,
  version       INTEGER NOT NULL CHECK (version >= 0),
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
  credits_minor INTEGER NOT NULL CHECK (credits_minor >= 0),
  debits_minor  INTEGER NOT NULL CHECK (debits_minor >= 0),
  entry_count   INTEGER NOT NULL CHECK (entry_count >= 0)
) WITHOUT ROWID;
CREATE TABLE $ledger_entries% (
  position             INTEGER PRIMARY KEY,
  wallet_id            TEXT    NOT NULL,
  wallet_key           INTEGER NOT NULL,
  version              INTEGER NOT NULL,
  type                 TEXT    NOT NULL CHECK (type = 'CREDIT' OR type = 'DEBIT' OR
                                            type = 'TRANSFER_OUT' OR type = 'TRANSFER_IN'),
  amount_minor         INTEGER NOT NULL CHECK (amount_minor > 0),
  balance_before_minor INTEGER NOT NULL CHECK (balance_before_minor >= 0),
  balance_after_minor  INTEGER NOT NULL CHECK (balance_after_minor >= 0),
  description          TEXT,
  reference_id         TEXT    NOT NULL,
  related_wallet_id    TEXT,
  metadata             TEXT,
  created_at_ms        INTEGER NOT NULL,
  reference_hash       INTEGER NOT NULL
);
CREATE TABLE $wallet_events% (
  position            INTEGER PRIMARY KEY,
  wallet_id           TEXT    NOT NULL,
  wallet_key          INTEGER NOT NULL,
  version             INTEGER NOT NULL CHECK (version >= 0),
  type                TEXT    NOT NULL,
  data                TEXT,
  metadata            TEXT,
  occurred_at_ms      INTEGER NOT NULL,
  balance_after_minor INTEGER NOT NULL CHECK (balance_after_minor >= 0)
);
CREATE TABLE $ledger_keys% (
  wallet_key    INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  position      INTEGER NOT NULL,
  PRIMARY KEY (wallet_key, created_at_ms, position)
) WITHOUT ROWID;
CREATE TABLE $wallet_event_keys% (
  wallet_key INTEGER NOT NULL,
  version    INTEGER NOT NULL,
  position   INTEGER NOT NULL,
  PRIMARY KEY (wallet_key, version)
) WITHOUT ROWID;
CREATE TABLE $event_wallets% (
  wallet_id     TEXT    PRIMARY KEY,
  wallet_key    INTEGER NOT NULL,
  version       INTEGER NOT NULL CHECK (version >= 0),
  balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0)
) WITHOUT ROWID;
)sql";

}  // namespace

// The reference index holds a 64-bit key derived from the reference id instead of the id (36
// bytes and more): building it sorts integers, about four times faster than sorting the texts,
// and a lookup compares the id itself after the key, so any function of the id would be correct.
// This one makes keys arrive nearly in order, so that the projector's inserts land on pages it
// wrote recently instead of one random page each (on a grown read.db that was most of the WAL it
// wrote per event; BENCHMARKS.md):
//  - a time-ordered (version 7) UUID, which Wallex gives transfers: its first 64 bits, the
//    milliseconds since 1970 first. Both entries of a transfer share the key; new ones append.
//  - "<walletId>:<version>" (credits, debits): the version's low 32 bits, then FNV-1a (32 bits)
//    of the wallet id. Entries of one version sit together, so the credits of a batch, whose
//    wallets' versions are mostly close, share pages; a wallet far ahead of the others (a hot
//    one) has its versions' stretch of keys to itself, where each new entry follows its last.
//    (Until schema 6 the wallet came first: each wallet's entries together, but a batch of
//    credits to a thousand wallets then wrote a thousand pages of the index; BENCHMARKS.md.)
//  - anything else (transfer ids of older Wallex versions): FNV-1a (64 bits) of the whole id.
// Fixed for a read-side schema version (kReadSchemaVersion): the keys are stored in read.db, and
// verify recomputes them through the SQL function wallex_reference_hash.
namespace {

std::uint64_t fnv1a(std::string_view text, std::uint64_t basis, std::uint64_t prime) {
  std::uint64_t hash = basis;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= prime;
  }
  return hash;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The first 64 bits of a lowercase version 7 UUID, or nullopt.
std::optional<std::uint64_t> time_ordered_uuid_prefix(std::string_view id) {
  if (id.size() != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' ||
      id[14] != '7') {
    return std::nullopt;
  }
  std::uint64_t prefix = 0;
  for (std::size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    const int digit = hex_digit(id[i]);
    if (digit < 0) return std::nullopt;
    if (i < 19) prefix = (prefix << 4) | static_cast<std::uint64_t>(digit);
  }
  return prefix;
}

}  // namespace

std::int64_t reference_hash(std::string_view reference_id) {
  if (auto prefix = time_ordered_uuid_prefix(reference_id)) {
    return static_cast<std::int64_t>(*prefix);
  }
  const std::size_t colon = reference_id.rfind(':');
  if (colon != std::string_view::npos && colon > 0 && colon + 1 < reference_id.size() &&
      reference_id.size() - colon - 1 <= 19) {
    const std::string_view digits = reference_id.substr(colon + 1);
    std::uint64_t version = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
    if (error == std::errc() && end == digits.data() + digits.size()) {
      const std::uint64_t wallet =
          fnv1a(reference_id.substr(0, colon), 2166136261ULL, 16777619ULL) & 0xffffffffULL;
      return static_cast<std::int64_t>(((version & 0xffffffffULL) << 32) | wallet);
    }
  }
  return static_cast<std::int64_t>(
      fnv1a(reference_id, 14695981039346656037ULL, 1099511628211ULL));
}

namespace {

// Secondary indexes, only ever on the live tables: a rebuild loads its fresh tables without
// them and builds them once, by sorting, when it swaps the tables in.
//
// The two per-wallet indexes are tables of our own instead (ledger_keys, wallet_event_keys):
// their keys arrive in random order, which SQLite's sorter handles at ~0.7 µs a row, while a
// rebuild can sort the few integers of each key itself and append them in order. The projector
// makes a key row with every entry or event and writes a batch's rows sorted, in the same
// transaction (flush_writes, commit); verify checks them.
// The reference index on its own as well: the move from schema 5 builds it again.
constexpr const char* kReferenceIndex =
    "CREATE INDEX $ledger_entries_by_reference ON ledger_entries (reference_hash);\n";
const std::string kIndexes = std::string(R"sql(
CREATE INDEX $read_wallets_by_owner ON read_wallets (owner_id, id);
CREATE INDEX $ledger_entries_by_time ON ledger_entries (created_at_ms);
)sql") + kReferenceIndex;

// Checkpoints of read.db (WalCheckpointer, with its default thresholds): from ~64 MiB of WAL the
// projector lets the checkpoints catch up before its next batch (settle()), so the WAL starts over.
constexpr int kCheckpointFramesToSettle = 16'000;

// Key rows a rebuild holds in memory before sorting and writing them (24 bytes each).
constexpr std::size_t kPendingKeysMax = 4'000'000;
using KeyRow = std::array<std::int64_t, 3>;

// What the store keeps of one table's rows (the ledger's entries or the wallets' event rows)
// between the calls that hand them over and the statements that write them.
template <typename Row>
struct RowsInFlight {
  // group_live_rows: the live rows of the open write not written yet, the first `held_count` of
  // `held` (the elements after them keep their strings' buffers for the next rows).
  std::vector<Row> held;
  std::size_t held_count = 0;
  // The key rows of the open write on the live tables, unsorted: written in key order at
  // flush_writes() or commit(). One at a time as the events came, each landed on a random page
  // (its wallet's) of a table larger than the CPU's caches: a third of the projector's time.
  std::vector<KeyRow> live_keys;
  std::vector<KeyRow> pending_keys;  // rebuild only, unsorted

  void hold(const Row& row) {
    if (held_count < held.size()) {
      held[held_count] = row;
    } else {
      held.push_back(row);
    }
    ++held_count;
  }
};

constexpr const char* kCheckpointTable = R"sql(
CREATE TABLE $checkpoints (
  projector     TEXT    PRIMARY KEY,
  position      INTEGER NOT NULL CHECK (position >= 0),
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

constexpr const char* kTableNames[] = {"read_wallets", "ledger_wallets", "ledger_entries",
                                       "ledger_keys",  "wallet_events",  "wallet_event_keys",
                                       "event_wallets"};

// "a, b" with prefix "e." -> "e.a, e.b"
std::string with_prefix(std::string_view columns, std::string_view prefix) {
  std::string out(prefix);
  for (const char c : columns) {
    out += c;
    if (c == ',') out += std::string(" ") + std::string(prefix);
  }
  // Collapse the doubled space left where the list already had one after a comma.
  std::string collapsed;
  for (const char c : out) {
    if (c == ' ' && !collapsed.empty() && collapsed.back() == ' ') continue;
    collapsed += c;
  }
  return collapsed;
}

std::string with_names(std::string_view text, std::string_view prefix, std::string_view suffix) {
  std::string out;
  for (const char c : text) {
    if (c == '$') {
      out += prefix;
    } else if (c == '%') {
      out += suffix;
    } else {
      out += c;
    }
  }
  return out;
}

std::string schema_script(std::string_view prefix) {
  return with_names(std::string(kTables) + kIndexes + kCheckpointTable, prefix, "") + "PRAGMA " +
         std::string(prefix) + "application_id = " + std::to_string(kReadApplicationId) +
         "; PRAGMA " + std::string(prefix) +
         "user_version = " + std::to_string(kReadSchemaVersion) + ";";
}

using Statement = SqliteStatement;

Status<StoreError> exec(sqlite3* db, const std::string& sql, std::string_view what) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return Ok{};
  StoreError error{classify_sqlite_error(rc),
                   std::string(what) + ": " + (message ? message : sqlite3_errstr(rc))};
  sqlite3_free(message);
  return fail(std::move(error));
}

Result<std::string, StoreError> query_text(sqlite3* db, const std::string& sql) {
  Statement statement;
  int rc = statement.prepare(db, sql);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
  rc = statement.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, sql));
  return std::string(statement.text(0));
}

Result<std::int64_t, StoreError> query_int(sqlite3* db, const std::string& sql) {
  Statement statement;
  int rc = statement.prepare(db, sql);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
  rc = statement.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, sql));
  return statement.int64(0);
}

// The first column of every row of a statement, as text.
Result<std::vector<std::string>, StoreError> query_rows(sqlite3* db, const std::string& sql) {
  Statement statement;
  int rc = statement.prepare(db, sql);
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
  std::vector<std::string> rows;
  while ((rc = statement.step()) == SQLITE_ROW) rows.emplace_back(statement.text(0));
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, sql));
  return rows;
}

// Collects every row of a statement through `read(statement)`.
template <typename Row, typename Read>
Result<std::vector<Row>, StoreError> collect(sqlite3* db, Statement& statement,
                                             std::string_view what, Read&& read) {
  ResetOnExit reset(statement);
  std::vector<Row> rows;
  int rc = SQLITE_OK;
  while ((rc = statement.step()) == SQLITE_ROW) {
    auto row = read(statement);
    if (!row) return fail(row.error());
    rows.push_back(std::move(row).value());
  }
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, what));
  return rows;
}

StoreError corrupt(std::string message) {
  return StoreError{StoreErrorKind::kCorrupt, std::move(message)};
}

Result<Money, StoreError> money_column(const Statement& s, int column, std::string_view what) {
  const std::int64_t minor = s.int64(column);
  if (minor < 0 || minor > Money::kBalanceMaxMinor) {
    return fail(corrupt(std::string(what) + ": amount out of range: " + std::to_string(minor)));
  }
  return Money::from_minor(minor);
}

constexpr const char* kWalletColumns = read_columns::kWallet;
constexpr const char* kLedgerWalletColumns = read_columns::kLedgerWallet;
constexpr const char* kEntryColumns = read_columns::kEntry;
constexpr const char* kWalletEventColumns = read_columns::kWalletEvent;
constexpr const char* kEventWalletColumns = read_columns::kEventWallet;
// The wallet key of a wallet id, for the per-wallet indexes (see projection/rows.h).
constexpr const char* kLedgerKeyOf = "(SELECT wallet_key FROM ledger_wallets WHERE wallet_id = ?1)";
constexpr const char* kEventsKeyOf = "(SELECT wallet_key FROM event_wallets WHERE wallet_id = ?1)";

// The first column as text (problem descriptions, group names).
Result<std::string, StoreError> text_row(const Statement& s) { return std::string(s.text(0)); }

Result<WalletState, StoreError> wallet_row(const Statement& s) {
  WalletState w;
  w.id = std::string(s.text(0));
  w.owner_id = std::string(s.text(1));
  auto balance = money_column(s, 2, "read_wallets " + w.id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  w.version = s.int64(3);
  w.created_at_ms = s.int64(4);
  w.updated_at_ms = s.int64(5);
  return w;
}

Result<LedgerWallet, StoreError> ledger_wallet_row(const Statement& s) {
  LedgerWallet w;
  w.wallet_id = std::string(s.text(0));
  w.version = s.int64(1);
  auto balance = money_column(s, 2, "ledger_wallets " + w.wallet_id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  w.credits_minor = s.int64(3);
  w.debits_minor = s.int64(4);
  w.entry_count = s.int64(5);
  w.wallet_key = s.int64(6);
  return w;
}

Result<LedgerEntry, StoreError> entry_row(const Statement& s) {
  LedgerEntry e;
  e.position = s.int64(0);
  const std::string what = "ledger entry " + std::to_string(e.position);
  // Positions start at 1 and name the entry (its id): a damaged file is an error, not a crash.
  if (e.position <= 0) return fail(corrupt(what + ": position must be positive"));
  e.wallet_id = std::string(s.text(1));
  e.version = s.int64(2);
  const std::optional<EntryType> type = entry_type_from_name(s.text(3));
  if (!type) return fail(corrupt(what + ": unknown type " + std::string(s.text(3))));
  e.type = *type;
  auto amount = money_column(s, 4, what);
  if (!amount) return fail(amount.error());
  auto before = money_column(s, 5, what);
  if (!before) return fail(before.error());
  auto after = money_column(s, 6, what);
  if (!after) return fail(after.error());
  e.amount = amount.value();
  e.balance_before = before.value();
  e.balance_after = after.value();
  e.description = s.optional_text(7);
  e.reference_id = std::string(s.text(8));
  e.related_wallet_id = s.optional_text(9);
  e.metadata = std::string(s.text(10));  // NULL (empty): the log's, as for the event copy
  e.created_at_ms = s.int64(11);
  e.wallet_key = s.int64(12);
  return e;
}

Result<WalletEventRow, StoreError> wallet_event_row(const Statement& s) {
  WalletEventRow r;
  r.position = s.int64(0);
  const std::string what = "wallet event " + std::to_string(r.position);
  r.wallet_id = std::string(s.text(1));
  r.version = s.int64(2);
  const std::optional<EventType> type = event_type_from_name(s.text(3));
  if (!type) return fail(corrupt(what + ": unknown type " + std::string(s.text(3))));
  r.type = *type;
  // NULL (left empty here): the log's document (SqliteReadStore::Impl::log_path), which
  // fill_documents reads. No document is ever empty text.
  r.data = std::string(s.text(4));
  r.metadata = std::string(s.text(5));
  r.occurred_at_ms = s.int64(6);
  auto balance = money_column(s, 7, what);
  if (!balance) return fail(balance.error());
  r.balance_after = balance.value();
  r.wallet_key = s.int64(8);
  return r;
}

Result<EventWallet, StoreError> event_wallet_row(const Statement& s) {
  EventWallet w;
  w.wallet_id = std::string(s.text(0));
  w.wallet_key = s.int64(1);
  w.version = s.int64(2);
  auto balance = money_column(s, 3, "event_wallets " + w.wallet_id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  return w;
}

template <typename Row>
Result<std::optional<Row>, StoreError> first_of(Result<std::vector<Row>, StoreError> rows) {
  if (!rows) return fail(rows.error());
  if (rows.value().empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows.value().front()));
}

// The statements that write a table set, and read it back the way projectors do.
// Key rows written with one statement (3 parameters each; SQLite allows 32,766).
constexpr std::size_t kKeyRowsPerInsert = 256;
// The values of a ledger entry (kEntryColumns, then reference_hash) and of a wallet event row.
constexpr std::size_t kEntryParameters = 14;
constexpr std::size_t kWalletEventParameters = 9;

std::string key_rows_insert_sql(const std::string& table, std::string_view columns,
                                std::size_t rows) {
  // OR FAIL: no statement journal (insert_rows in sqlite_error.h).
  return "INSERT OR FAIL INTO " + table + " (" + std::string(columns) + ") VALUES " +
         values_groups(3, rows);
}

struct WriteStatements {
  Statement read_wallet, put_read_wallet, ledger_wallet, put_ledger_wallet, insert_entry,
      insert_ledger_key, event_wallet, put_event_wallet, insert_wallet_event,
      insert_wallet_event_key;
  // SqliteReadStore::kRowsPerInsert entries or wallet event rows at once (group_live_rows).
  Statement insert_entries_bulk, insert_wallet_events_bulk;
  // kKeyRowsPerInsert key rows at once (sorted key rows: a rebuild's, a live write's).
  Statement insert_ledger_keys_bulk, insert_wallet_event_keys_bulk;

  // Tables are named prefix + name + suffix (see kTables).
  Status<StoreError> prepare(sqlite3* db, std::string_view prefix, std::string_view suffix) {
    const std::string s(suffix);
    const std::string p(prefix);
    // One row with the single statement, kRowsPerInsert with the bulk one.
    const std::string insert_entries = "INSERT OR FAIL INTO " + p + "ledger_entries" + s + " (" +
                                       kEntryColumns + ", reference_hash) VALUES ";
    const std::string insert_wallet_events =
        "INSERT OR FAIL INTO " + p + "wallet_events" + s + " (" + kWalletEventColumns + ") VALUES ";
    const std::pair<Statement*, std::string> statements[] = {
        {&read_wallet, std::string("SELECT ") + kWalletColumns + " FROM " + p + "read_wallets" + s +
                           " WHERE id = ?1"},
        // The read model never moves backwards: an update must raise the version.
        {&put_read_wallet,
         "INSERT INTO " + p + "read_wallets" + s +
             " (id, owner_id, balance_minor, version, created_at_ms, updated_at_ms)"
             " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET"
             " balance_minor = excluded.balance_minor, version = excluded.version,"
             " updated_at_ms = excluded.updated_at_ms WHERE version < excluded.version"},
        {&ledger_wallet, std::string("SELECT ") + kLedgerWalletColumns + " FROM " + p +
                             "ledger_wallets" + s + " WHERE wallet_id = ?1"},
        {&put_ledger_wallet,
         "INSERT INTO " + p + "ledger_wallets" + s + " (" + kLedgerWalletColumns +
             ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
             " ON CONFLICT (wallet_id) DO UPDATE SET"
             " version = excluded.version, balance_minor = excluded.balance_minor,"
             " credits_minor = excluded.credits_minor, debits_minor = excluded.debits_minor,"
             " entry_count = excluded.entry_count WHERE version < excluded.version"},
        {&insert_entry, insert_entries + values_groups(kEntryParameters, 1)},
        {&insert_entries_bulk,
         insert_entries + values_groups(kEntryParameters, SqliteReadStore::kRowsPerInsert)},
        {&insert_ledger_key, "INSERT INTO " + p + "ledger_keys" + s +
                                 " (wallet_key, created_at_ms, position) VALUES (?1, ?2, ?3)"},
        {&insert_wallet_event_key, "INSERT INTO " + p + "wallet_event_keys" + s +
                                       " (wallet_key, version, position) VALUES (?1, ?2, ?3)"},
        {&insert_ledger_keys_bulk,
         key_rows_insert_sql(p + "ledger_keys" + s, "wallet_key, created_at_ms, position",
                             kKeyRowsPerInsert)},
        {&insert_wallet_event_keys_bulk,
         key_rows_insert_sql(p + "wallet_event_keys" + s, "wallet_key, version, position",
                             kKeyRowsPerInsert)},
        {&event_wallet, std::string("SELECT ") + kEventWalletColumns + " FROM " + p +
                            "event_wallets" + s + " WHERE wallet_id = ?1"},
        {&put_event_wallet,
         "INSERT INTO " + p + "event_wallets" + s + " (" + kEventWalletColumns +
             ") VALUES (?1, ?2, ?3, ?4) ON CONFLICT (wallet_id) DO UPDATE SET"
             " version = excluded.version, balance_minor = excluded.balance_minor"
             " WHERE version < excluded.version"},
        {&insert_wallet_event, insert_wallet_events + values_groups(kWalletEventParameters, 1)},
        {&insert_wallet_events_bulk,
         insert_wallet_events +
             values_groups(kWalletEventParameters, SqliteReadStore::kRowsPerInsert)},
    };
    for (const auto& [statement, sql] : statements) {
      const int rc = statement->prepare(db, sql);
      if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "preparing " + sql));
    }
    return Ok{};
  }
};

// Queries of the live tables (they rely on the secondary indexes).
struct QueryStatements {
  Statement list_wallets, list_wallets_of_owner, scan_ledger_wallets, scan_event_wallets,
      find_entries[4], entries_by_reference, scan_entries, wallet_events, wallet_event_at,
      scan_wallet_events, ledger_fingerprint, ledger_keys_fingerprint, events_fingerprint,
      event_keys_fingerprint, ledger_key_problems, event_key_problems, reference_hash_problems,
      checkpoints, set_checkpoint;

  static std::string fingerprint_sql(std::string_view table, std::string_view order_column) {
    const std::string o(order_column);
    return "SELECT count(*), sum(position), sum(wallet_key), sum(" + o +
           " % 1000003),"
           " sum((position % 1000003) * (wallet_key % 999983) % 1000000007),"
           " sum((" +
           o +
           " % 1000003) * (position % 999979) % 1000000007),"
           " sum((" +
           o + " % 999961) * (wallet_key % 1000033) % 1000000007) FROM " + std::string(table);
  }

  static std::string find_entries_sql(bool by_wallet, bool by_type) {
    std::string sql;
    if (by_wallet) {
      // CROSS JOIN: walk the wallet's key rows (newest first), fetch each entry by position.
      sql = std::string("SELECT ") + with_prefix(kEntryColumns, "e.") +
            " FROM ledger_keys AS k CROSS JOIN ledger_entries AS e ON e.position = k.position"
            " WHERE k.wallet_key = " +
            kLedgerKeyOf + " AND k.created_at_ms BETWEEN ?2 AND ?3" +
            (by_type ? " AND e.type = ?4" : "") +
            " ORDER BY k.created_at_ms DESC, k.position DESC LIMIT ?5 OFFSET ?6";
    } else {
      sql = std::string("SELECT ") + kEntryColumns +
            " FROM ledger_entries INDEXED BY ledger_entries_by_time"
            " WHERE created_at_ms BETWEEN ?2 AND ?3" +
            (by_type ? " AND type = ?4" : "") +
            " ORDER BY created_at_ms DESC, position DESC LIMIT ?5 OFFSET ?6";
    }
    return sql;
  }

  Status<StoreError> prepare(sqlite3* db) {
    const std::pair<Statement*, std::string> statements[] = {
        {&list_wallets, std::string("SELECT ") + kWalletColumns +
                            " FROM read_wallets WHERE id > ?1 ORDER BY id LIMIT ?2"},
        {&list_wallets_of_owner, std::string("SELECT ") + kWalletColumns +
                                     " FROM read_wallets INDEXED BY read_wallets_by_owner"
                                     " WHERE owner_id = ?3 AND id > ?1 ORDER BY id LIMIT ?2"},
        {&scan_ledger_wallets, std::string("SELECT ") + kLedgerWalletColumns +
                                   " FROM ledger_wallets WHERE wallet_id > ?1"
                                   " ORDER BY wallet_id LIMIT ?2"},
        {&scan_event_wallets, std::string("SELECT ") + kEventWalletColumns +
                                  " FROM event_wallets WHERE wallet_id > ?1"
                                  " ORDER BY wallet_id LIMIT ?2"},
        {&find_entries[0], find_entries_sql(false, false)},
        {&find_entries[1], find_entries_sql(false, true)},
        {&find_entries[2], find_entries_sql(true, false)},
        {&find_entries[3], find_entries_sql(true, true)},
        {&entries_by_reference, std::string("SELECT ") + kEntryColumns +
                                    " FROM ledger_entries INDEXED BY ledger_entries_by_reference"
                                    " WHERE reference_hash = ?3 AND reference_id = ?1"
                                    " ORDER BY created_at_ms DESC, position DESC LIMIT ?2"},
        {&scan_entries, std::string("SELECT ") + kEntryColumns +
                            " FROM ledger_entries WHERE position > ?1 ORDER BY position LIMIT ?2"},
        {&wallet_events, std::string("SELECT ") + with_prefix(kWalletEventColumns, "e.") +
                             " FROM wallet_event_keys AS k CROSS JOIN wallet_events AS e"
                             " ON e.position = k.position WHERE k.wallet_key = " +
                             kEventsKeyOf + " AND k.version >= ?2 ORDER BY k.version LIMIT ?3"},
        {&wallet_event_at, std::string("SELECT ") + with_prefix(kWalletEventColumns, "e.") +
                               " FROM wallet_event_keys AS k CROSS JOIN wallet_events AS e"
                               " ON e.position = k.position WHERE k.wallet_key = " +
                               kEventsKeyOf +
                               " AND e.occurred_at_ms <= ?2 ORDER BY k.version DESC LIMIT 1"},
        // Fingerprints of the rows and of their key rows: equal when both hold the same (key,
        // order, position) triples, whatever the order (a changed, missing or extra row moves
        // the count or a sum). Only when they differ is the slow row-by-row search run.
        {&ledger_fingerprint, fingerprint_sql("ledger_entries", "created_at_ms")},
        {&ledger_keys_fingerprint, fingerprint_sql("ledger_keys", "created_at_ms")},
        {&events_fingerprint, fingerprint_sql("wallet_events", "version")},
        {&event_keys_fingerprint, fingerprint_sql("wallet_event_keys", "version")},
        {&ledger_key_problems,
         "SELECT 'ledger entry at position ' || e.position || ' has no key row' FROM ledger_entries"
         " AS e WHERE NOT EXISTS (SELECT 1 FROM ledger_keys AS k WHERE k.wallet_key = e.wallet_key"
         " AND k.created_at_ms = e.created_at_ms AND k.position = e.position)"
         " UNION ALL SELECT 'ledger key row (' || k.wallet_key || ', ' || k.created_at_ms || ', ' "
         "||"
         " k.position || ') matches no entry' FROM ledger_keys AS k WHERE NOT EXISTS (SELECT 1"
         " FROM ledger_entries AS e WHERE e.position = k.position AND e.wallet_key = k.wallet_key"
         " AND e.created_at_ms = k.created_at_ms) LIMIT ?1"},
        {&event_key_problems,
         "SELECT 'wallet event at position ' || e.position || ' has no key row'"
         " FROM wallet_events AS e WHERE NOT EXISTS (SELECT 1 FROM wallet_event_keys AS k WHERE"
         " k.wallet_key = e.wallet_key AND k.version = e.version AND k.position = e.position)"
         " UNION ALL SELECT 'wallet event key row (' || k.wallet_key || ', ' || k.version || ', ' "
         "||"
         " k.position || ') matches no event' FROM wallet_event_keys AS k WHERE NOT EXISTS"
         " (SELECT 1 FROM wallet_events AS e WHERE e.position = k.position AND e.wallet_key ="
         " k.wallet_key AND e.version = k.version) LIMIT ?1"},
        {&reference_hash_problems,
         "SELECT 'ledger entry at position ' || position || ' has a reference hash that does not"
         " match its reference id' FROM ledger_entries"
         " WHERE reference_hash != wallex_reference_hash(reference_id) LIMIT ?1"},
        {&scan_wallet_events, std::string("SELECT ") + kWalletEventColumns +
                                  " FROM wallet_events WHERE position > ?1"
                                  " ORDER BY position LIMIT ?2"},
        {&checkpoints, "SELECT projector, position, updated_at_ms FROM checkpoints"},
        {&set_checkpoint,
         "INSERT INTO checkpoints (projector, position, updated_at_ms) VALUES (?1, ?2, ?3)"
         " ON CONFLICT (projector) DO UPDATE SET position = excluded.position,"
         " updated_at_ms = excluded.updated_at_ms"},
    };
    for (const auto& [statement, sql] : statements) {
      const int rc = statement->prepare(db, sql);
      if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "preparing " + sql));
    }
    return Ok{};
  }
};

sqlite3* open_connection(const std::string& path, int flags, StoreError* error) {
  sqlite3* db = nullptr;
  const int rc = open_sqlite(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX);
  if (rc != SQLITE_OK) {
    *error = sqlite_error(db, rc, "opening " + path);
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_extended_result_codes(db, 1);
  create_text_hash_function(db, "wallex_reference_hash", reference_hash);
  return db;
}

}  // namespace

// ================================================================================ SqliteReadStore

struct SqliteReadStore::Impl {
  // Checkpoints of a writable read.db, off the projector's commits; declared first: destroyed
  // after db closes.
  std::unique_ptr<WalCheckpointer> checkpointer;
  sqlite3* db = nullptr;
  std::string data_dir;
  bool read_only = false;
  // The embedded store's log (wallex.db beside read.db) when read.db was opened as part of a data
  // directory that has one: the per-wallet event copy then stores no documents, and the ledger
  // no entry's metadata, which are the log's own, and a query reads them from the log by
  // position (log_db, opened at the first such read). Empty for a read side of its own (a
  // Kafka-built file): it keeps them.
  std::string log_path;
  sqlite3* log_db = nullptr;
  Statement log_documents, log_document_range;
  enum class Rebuild { kNone, kNextTables, kSideFile } rebuild = Rebuild::kNone;
  RowsInFlight<LedgerEntry> ledger_rows;
  RowsInFlight<WalletEventRow> event_rows;
  bool group_rows = false;  // group_live_rows
  WriteStatements live;
  std::unique_ptr<WriteStatements> next;  // while a rebuild fills the _next tables
  QueryStatements queries;
  Statement begin, commit, rollback;
  // The consumer-group projectors' state (ConsumerStateStore); absent from a read-only file
  // that never had a consumer (then every query answers "nothing stored").
  bool has_consumer_tables = false;
  Statement consumer_offsets, set_consumer_offset, consumer_wallet_version,
      set_consumer_wallet_version, add_dead_letter, dead_letter_count, consumer_groups;

  ~Impl() {
    // Statements are finalized after this body; sqlite3_close_v2 waits for them.
    sqlite3_close_v2(db);
    sqlite3_close_v2(log_db);
  }

  // The read-only connection to the log and its statements; on failure, none of them.
  Status<StoreError> open_log() {
    StoreError error;
    sqlite3* opened = open_connection(log_path, SQLITE_OPEN_READONLY, &error);
    if (opened == nullptr) return fail(error);
    Status<StoreError> status = exec(opened, "PRAGMA busy_timeout = 10000; PRAGMA query_only = 1;",
                                     "configuring " + log_path);
    const std::pair<Statement*, const char*> statements[] = {
        {&log_documents, "SELECT position, data, metadata FROM events WHERE position = ?1"},
        {&log_document_range,
         "SELECT position, data, metadata FROM events"
         " WHERE position BETWEEN ?1 AND ?2 ORDER BY position"}};
    for (const auto& [statement, sql] : statements) {
      if (!status) break;
      if (const int rc = statement->prepare(opened, sql); rc != SQLITE_OK) {
        status = fail(sqlite_error(opened, rc, sql));
      }
    }
    if (!status) {
      sqlite3_close_v2(opened);
      return status;
    }
    log_db = opened;
    return Ok{};
  }

  // What a row of the read side leaves to the log: the event copy both documents, a ledger
  // entry its metadata. Read from a NULL column, such a document is empty text (no document is).
  static bool lacks_documents(const WalletEventRow& row) {
    return row.data.empty() || row.metadata.empty();
  }
  static bool lacks_documents(const LedgerEntry& entry) { return entry.metadata.empty(); }
  // `s` is a row of log_documents or log_document_range: position, data, metadata.
  static void take_documents(WalletEventRow& row, const Statement& s) {
    if (row.data.empty()) row.data = std::string(s.text(1));
    if (row.metadata.empty()) row.metadata = std::string(s.text(2));
  }
  static void take_documents(LedgerEntry& entry, const Statement& s) {
    entry.metadata = std::string(s.text(2));
  }
  static const char* row_kind(const WalletEventRow&) { return "wallet event"; }
  static const char* row_kind(const LedgerEntry&) { return "ledger entry"; }

  // Gives the rows whose documents were left to the log the log's: one range read when their
  // positions are a dense run (a scan, a page of the whole ledger, a transfer's two entries),
  // else one read each.
  template <typename Row>
  Status<StoreError> fill_documents(std::vector<Row>& rows) {
    std::vector<Row*> missing;
    for (Row& row : rows) {
      if (lacks_documents(row)) missing.push_back(&row);
    }
    if (missing.empty()) return Ok{};
    const auto lost = [this](const Row& row) {
      return fail(corrupt(std::string(row_kind(row)) + " at position " +
                          std::to_string(row.position) + ": not in the log " + log_path));
    };
    if (log_path.empty()) {
      return fail(corrupt(std::string(row_kind(*missing.front())) + " at position " +
                          std::to_string(missing.front()->position) +
                          ": read.db holds no documents for it and has no log beside it"));
    }
    if (log_db == nullptr) {
      if (auto s = open_log(); !s) return s;
    }
    // In position order, whatever the order of the rows (the ledger's pages come newest first).
    std::sort(missing.begin(), missing.end(),
              [](const Row* a, const Row* b) { return a->position < b->position; });
    const std::int64_t first = missing.front()->position;
    const std::int64_t last = missing.back()->position;
    if (last - first < 2 * static_cast<std::int64_t>(missing.size())) {
      Statement& s = log_document_range;
      ResetOnExit reset(s);
      s.bind(1, first);
      s.bind(2, last);
      auto wanted = missing.begin();
      int rc = SQLITE_OK;
      while (wanted != missing.end() && (rc = s.step()) == SQLITE_ROW) {
        const std::int64_t position = s.int64(0);
        if (position < (*wanted)->position) continue;
        if (position > (*wanted)->position) return lost(**wanted);
        take_documents(**wanted, s);
        ++wanted;
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return fail(sqlite_error(log_db, rc, "reading events' documents from the log"));
      }
      if (wanted != missing.end()) return lost(**wanted);
      return Ok{};
    }
    for (Row* row : missing) {
      Statement& s = log_documents;
      ResetOnExit reset(s);
      s.bind(1, row->position);
      const int rc = s.step();
      if (rc == SQLITE_DONE) return lost(*row);
      if (rc != SQLITE_ROW) {
        return fail(sqlite_error(log_db, rc, "reading an event's documents from the log"));
      }
      take_documents(*row, s);
    }
    return Ok{};
  }
  template <typename Row>
  Result<std::vector<Row>, StoreError> with_documents(Result<std::vector<Row>, StoreError> rows) {
    if (!rows) return rows;
    if (auto s = fill_documents(rows.value()); !s) return fail(s.error());
    return rows;
  }

  WriteStatements& writes() { return next ? *next : live; }

  // Sorts the key rows a rebuild collected and appends them to its _next key tables in key
  // order (inside the caller's transaction). The two sets are sorted on two threads (the other
  // core is idle at this point of a rebuild).
  Status<StoreError> write_pending_keys() {
    std::thread sorter(
        [this] { std::sort(event_rows.pending_keys.begin(), event_rows.pending_keys.end()); });
    std::sort(ledger_rows.pending_keys.begin(), ledger_rows.pending_keys.end());
    sorter.join();
    return write_key_sets(*next, ledger_rows.pending_keys, event_rows.pending_keys);
  }

  // Binds an entry's values from `parameter` on; the parameter after them.
  int bind_entry(Statement& s, int parameter, const LedgerEntry& entry) const {
    s.bind(parameter++, entry.position);
    s.bind(parameter++, entry.wallet_id);
    s.bind(parameter++, entry.version);
    s.bind(parameter++, entry_type_name(entry.type));
    s.bind(parameter++, entry.amount.minor());
    s.bind(parameter++, entry.balance_before.minor());
    s.bind(parameter++, entry.balance_after.minor());
    s.bind_optional(parameter++, entry.description);
    s.bind(parameter++, entry.reference_id);
    s.bind_optional(parameter++, entry.related_wallet_id);
    if (log_path.empty()) {
      s.bind(parameter++, entry.metadata);
    } else {
      s.bind_null(parameter++);  // the log's (log_path)
    }
    s.bind(parameter++, entry.created_at_ms);
    s.bind(parameter++, entry.wallet_key);
    s.bind(parameter++, reference_hash(entry.reference_id));
    return parameter;
  }

  int bind_wallet_event(Statement& s, int parameter, const WalletEventRow& row) const {
    s.bind(parameter++, row.position);
    s.bind(parameter++, row.wallet_id);
    s.bind(parameter++, row.version);
    s.bind(parameter++, event_type_name(row.type));
    if (log_path.empty()) {
      s.bind(parameter++, row.data);
      s.bind(parameter++, row.metadata);
    } else {
      s.bind_null(parameter++);  // the log's documents (log_path)
      s.bind_null(parameter++);
    }
    s.bind(parameter++, row.occurred_at_ms);
    s.bind(parameter++, row.balance_after.minor());
    s.bind(parameter++, row.wallet_key);
    return parameter;
  }

  // One entry or wallet event row handed over: held for its group (group_live_rows), or
  // written now; its key row is kept for the open write's or the rebuild's sorted write.
  template <typename Row>
  Status<StoreError> insert_row(const Row& row, const KeyRow& key, RowsInFlight<Row>& rows,
                                Statement WriteStatements::*single,
                                int (Impl::*bind)(Statement&, int, const Row&) const,
                                std::string_view what) {
    if (group_rows && !next) {
      rows.hold(row);
      rows.live_keys.push_back(key);
      if (rows.held_count >= SqliteReadStore::kHeldRowsMax) return write_held_rows();
      return Ok{};
    }
    Statement& s = writes().*single;
    (this->*bind)(s, 1, row);
    if (auto st = run_statement(db, s, what); !st) return st;
    if (next) {
      rows.pending_keys.push_back(key);
      if (rows.pending_keys.size() >= kPendingKeysMax) return write_pending_keys();
      return Ok{};
    }
    rows.live_keys.push_back(key);
    return Ok{};
  }

  // The held rows of `rows`, kRowsPerInsert a statement (inside the open write).
  template <typename Row>
  Status<StoreError> write_held_set(RowsInFlight<Row>& rows, Statement& bulk, Statement& single,
                                    int (Impl::*bind)(Statement&, int, const Row&) const,
                                    std::string_view what) {
    const auto bind_row = [&](Statement& s, int parameter, std::size_t row) {
      return (this->*bind)(s, parameter, rows.held[row]);
    };
    if (auto s = insert_rows(db, bulk, SqliteReadStore::kRowsPerInsert, single, rows.held_count,
                             bind_row, what);
        !s) {
      return s;
    }
    rows.held_count = 0;
    return Ok{};
  }

  Status<StoreError> write_held_rows() {
    if (auto s = write_held_set(ledger_rows, live.insert_entries_bulk, live.insert_entry,
                                &Impl::bind_entry, "writing ledger entries");
        !s) {
      return s;
    }
    return write_held_set(event_rows, live.insert_wallet_events_bulk, live.insert_wallet_event,
                          &Impl::bind_wallet_event, "writing wallet events");
  }

  // What the open write holds back: its rows, then their key rows.
  Status<StoreError> write_held() {
    if (auto s = write_held_rows(); !s) return s;
    return write_live_keys();
  }

  // The live writes' key rows, sorted, into the live key tables (inside the open write).
  Status<StoreError> write_live_keys() {
    std::sort(ledger_rows.live_keys.begin(), ledger_rows.live_keys.end());
    std::sort(event_rows.live_keys.begin(), event_rows.live_keys.end());
    return write_key_sets(live, ledger_rows.live_keys, event_rows.live_keys);
  }

  Status<StoreError> write_key_sets(WriteStatements& into, std::vector<KeyRow>& ledger,
                                    std::vector<KeyRow>& events) {
    if (auto s = write_sorted_keys(ledger, into.insert_ledger_keys_bulk, into.insert_ledger_key,
                                   "writing ledger key rows");
        !s) {
      return s;
    }
    return write_sorted_keys(events, into.insert_wallet_event_keys_bulk,
                             into.insert_wallet_event_key, "writing wallet event key rows");
  }

  // Sorted rows, kKeyRowsPerInsert a statement, then one by one; `rows` is emptied once written.
  Status<StoreError> write_sorted_keys(std::vector<KeyRow>& rows, Statement& bulk,
                                       Statement& single, std::string_view what) {
    const auto bind_row = [&rows](Statement& s, int parameter, std::size_t row) {
      for (const std::int64_t value : rows[row]) s.bind(parameter++, value);
      return parameter;
    };
    if (auto s = insert_rows(db, bulk, kKeyRowsPerInsert, single, rows.size(), bind_row, what); !s)
      return s;
    rows.clear();
    return Ok{};
  }

  // Read-write: inside one IMMEDIATE transaction, so two processes opening a new file at once
  // (two `wallex project` members of a group) create the schema once.
  Status<StoreError> create_or_check_schema(const std::string& path) {
    if (read_only) return check_or_create(path);
    if (auto s = exec(db, "BEGIN IMMEDIATE", "locking " + path); !s) return s;
    auto checked = check_or_create(path);
    if (!checked) {
      (void)exec(db, "ROLLBACK", "rollback");
      return checked;
    }
    return exec(db, "COMMIT", "creating the read-side schema");
  }

  // Schema 4 to 5 in place: the one difference is that ledger_entries.metadata may be NULL.
  // Dropping a NOT NULL constraint changes no row, and it is one of the schema edits SQLite's
  // documentation gives a procedure for (lang_altertable.html, "making other kinds of table
  // schema changes": the table's text in sqlite_schema rewritten under writable_schema, the
  // schema version moved on, in one transaction). So the file keeps its rows, checkpoints and a
  // consumer group's offsets, rather than being replayed from position 0 (or from the start of
  // a Kafka topic that may no longer hold it). False when the table's text is not the one
  // version 4 wrote: the caller then replaces the read side as for any older version. Inside
  // create_or_check_schema's transaction.
  Result<bool, StoreError> migrate_from_4() {
    constexpr const char* kOld = "metadata             TEXT    NOT NULL,";
    constexpr const char* kNew = "metadata             TEXT,";
    const std::string tables =
        "type = 'table' AND name IN ('ledger_entries', 'ledger_entries_next')";
    auto matching = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE " + tables +
                                      " AND instr(sql, '" + kOld + "') > 0");
    if (!matching) return fail(matching.error());
    auto present = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE " + tables);
    if (!present) return fail(present.error());
    if (matching.value() == 0 || matching.value() != present.value()) return false;
    auto schema_version = query_int(db, "PRAGMA schema_version");
    if (!schema_version) return fail(schema_version.error());
    const std::string script =
        "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, '" +
        std::string(kOld) + "', '" + kNew + "') WHERE " + tables +
        "; PRAGMA schema_version = " + std::to_string(schema_version.value() + 1) +
        "; PRAGMA writable_schema = OFF; PRAGMA user_version = 5;";
    if (auto s = exec(db, script, "moving read-side schema 4 to 5"); !s) return fail(s.error());
    return true;
  }

  // Schema 5 to 6 in place: the reference keys of credits and debits ("<walletId>:<version>")
  // put the version first now. Rows and checkpoints stay; the keys are recomputed with the index
  // dropped and then built again by one sort (updated through it, each key would move to a
  // random page of it). The _next tables of a rebuild an older wallex left (or is still running)
  // go: a rebuild is never resumed, and one still running then fails instead of swapping in keys
  // of the old layout. Inside create_or_check_schema's transaction.
  Status<StoreError> migrate_from_5() {
    std::string script;
    for (const char* table : kTableNames) {
      script += std::string("DROP TABLE IF EXISTS ") + table + "_next;";
    }
    script +=
        "DROP INDEX IF EXISTS ledger_entries_by_reference;"
        " UPDATE ledger_entries SET reference_hash = wallex_reference_hash(reference_id)"
        " WHERE related_wallet_id IS NULL; " +
        with_names(kReferenceIndex, "", "") + "PRAGMA user_version = 6;";
    return exec(db, script, "moving read-side schema 5 to 6");
  }

  Status<StoreError> check_or_create(const std::string& path) {
    auto application_id = query_int(db, "PRAGMA application_id");
    if (!application_id) return fail(application_id.error());
    auto user_version = query_int(db, "PRAGMA user_version");
    if (!user_version) return fail(user_version.error());
    auto table_count = query_int(db, "SELECT count(*) FROM sqlite_schema");
    if (!table_count) return fail(table_count.error());
    if (application_id.value() == 0 && user_version.value() == 0 && table_count.value() == 0) {
      if (read_only)
        return fail(StoreError{StoreErrorKind::kCorrupt, path + " has no read side yet"});
      return exec(db, schema_script(""), "creating the read-side schema");
    }
    if (application_id.value() != kReadApplicationId) {
      return fail(StoreError{StoreErrorKind::kCorrupt, path + " is not a Wallex read side"});
    }
    std::int64_t version = user_version.value();
    if (version == 4 && !read_only) {
      auto migrated = migrate_from_4();
      if (!migrated) return fail(migrated.error());
      if (migrated.value()) version = 5;
    }
    if (version == 5 && !read_only) return migrate_from_5();
    if (version < kReadSchemaVersion && !read_only) {
      // Written by an older Wallex. The read side is derived from the log: start it afresh (the
      // projectors catch up from position 0), rather than refusing to serve. A consumer-group
      // projector's offsets and wallet versions describe the dropped rows: they go too. (Inside
      // create_or_check_schema's transaction.)
      std::string script;
      for (const char* table : kTableNames) {
        script += std::string("DROP TABLE IF EXISTS ") + table + "; DROP TABLE IF EXISTS " + table +
                  "_next;";
      }
      script +=
          "DROP TABLE IF EXISTS checkpoints; DROP TABLE IF EXISTS consumer_offsets;"
          " DROP TABLE IF EXISTS consumer_wallets; DROP TABLE IF EXISTS consumer_dead_letters;" +
          schema_script("");
      return exec(
          db, script,
          "replacing a read side of schema version " + std::to_string(user_version.value()));
    }
    if (user_version.value() != kReadSchemaVersion) {
      return fail(StoreError{user_version.value() < kReadSchemaVersion
                                 ? StoreErrorKind::kSchemaTooOld
                                 : StoreErrorKind::kSchemaTooNew,
                             path + " has read-side schema version " +
                                 std::to_string(user_version.value()) + "; this wallex uses " +
                                 std::to_string(kReadSchemaVersion) +
                                 (user_version.value() < kReadSchemaVersion
                                      ? ", and moves or replaces it when it opens it for writing"
                                        " (wallex serve, project or rebuild)"
                                      : ". It is rebuildable: delete it or run wallex rebuild")});
    }
    return Ok{};
  }

  Status<StoreError> prepare_consumer() {
    if (!read_only) {
      if (auto s = exec(db, kConsumerTables, "creating the consumer tables"); !s) return s;
    }
    auto count = query_int(db,
                           "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                           "('consumer_offsets', 'consumer_wallets', 'consumer_dead_letters')");
    if (!count) return fail(count.error());
    has_consumer_tables = count.value() == 3;
    if (!has_consumer_tables) return Ok{};
    const std::pair<Statement*, const char*> statements[] = {
        {&consumer_offsets,
         "SELECT partition_id, next_offset FROM consumer_offsets WHERE group_id = ?1 AND topic = "
         "?2 "
         "ORDER BY partition_id"},
        {&set_consumer_offset,
         "INSERT INTO consumer_offsets (group_id, topic, partition_id, next_offset) "
         "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (group_id, topic, partition_id) "
         "DO UPDATE SET next_offset = excluded.next_offset"},
        {&consumer_wallet_version,
         "SELECT version FROM consumer_wallets WHERE group_id = ?1 AND wallet_id = ?2"},
        {&set_consumer_wallet_version,
         "INSERT INTO consumer_wallets (group_id, wallet_id, version) VALUES (?1, ?2, ?3) "
         "ON CONFLICT (group_id, wallet_id) DO UPDATE SET version = excluded.version"},
        {&add_dead_letter,
         "INSERT INTO consumer_dead_letters (group_id, topic, partition_id, message_offset, "
         "attempts, error, "
         "at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"},
        {&dead_letter_count, "SELECT count(*) FROM consumer_dead_letters WHERE group_id = ?1"},
        {&consumer_groups, "SELECT DISTINCT group_id FROM consumer_offsets ORDER BY group_id"},
    };
    for (const auto& [statement, sql] : statements) {
      const int rc = statement->prepare(db, sql);
      if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
    }
    return Ok{};
  }

  Status<StoreError> prepare_control() {
    const std::pair<Statement*, const char*> statements[] = {
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
    };
    for (const auto& [statement, sql] : statements) {
      const int rc = statement->prepare(db, sql);
      if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, sql));
    }
    return Ok{};
  }
};

SqliteReadStore::SqliteReadStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteReadStore::~SqliteReadStore() = default;

std::string SqliteReadStore::path_in(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "read.db").string();
}

Result<std::unique_ptr<SqliteReadStore>, StoreError> SqliteReadStore::open(
    const std::string& data_dir, Access access) {
  auto store = open_file(path_in(data_dir), access);
  if (!store) return store;
  const std::string log = (std::filesystem::path(data_dir) / "wallex.db").string();
  std::error_code ec;
  if (std::filesystem::exists(log, ec)) store.value()->impl_->log_path = log;
  return store;
}

Result<std::unique_ptr<SqliteReadStore>, StoreError> SqliteReadStore::open_file(
    const std::string& path, Access access) {
  const std::string data_dir = std::filesystem::path(path).parent_path().string().empty()
                                   ? std::string(".")
                                   : std::filesystem::path(path).parent_path().string();
  const bool read_only = access == Access::kReadOnly;
  std::error_code ec;
  if (read_only && !std::filesystem::exists(path, ec)) {
    return fail(StoreError{StoreErrorKind::kIo, path + " does not exist"});
  }
  if (!read_only) {
    std::filesystem::create_directories(data_dir, ec);
    if (ec) {
      return fail(StoreError{StoreErrorKind::kIo,
                             "cannot create data directory " + data_dir + ": " + ec.message()});
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->data_dir = data_dir;
  impl->read_only = read_only;
  StoreError error;
  impl->db = open_connection(
      path, read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &error);
  if (impl->db == nullptr) return fail(error);

  // read.db is rebuildable from the log: synchronous=NORMAL (no fsync per commit in WAL mode)
  // is acceptable here and only here; a commit stays atomic, rows and checkpoint together.
  // Checkpoints run on a thread of their own (below), not inside the projector's commits.
  const std::string pragmas =
      read_only
          ? "PRAGMA busy_timeout = 10000; PRAGMA query_only = 1; PRAGMA cache_size = -16384"
          : "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
            " PRAGMA cache_size = -262144; PRAGMA foreign_keys = OFF";
  // Two processes opening one new file at once (members of a consumer group): the switch to
  // WAL of one makes the other's fail with SQLITE_BUSY at once, without the busy handler.
  const int rc = exec_while_busy(impl->db, pragmas.c_str());
  if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, "configuring " + path));
  if (auto s = impl->create_or_check_schema(path); !s) return fail(s.error());
  if (auto s = impl->prepare_control(); !s) return fail(s.error());
  if (auto s = impl->queries.prepare(impl->db); !s) return fail(s.error());
  if (auto s = impl->live.prepare(impl->db, "", ""); !s) return fail(s.error());
  if (auto s = impl->prepare_consumer(); !s) return fail(s.error());
  if (!read_only) {
    // An inline checkpoint of a projector's batch (tens of MiB copied, then an fsync of read.db)
    // stalled the projector for tens of milliseconds, and its catching up afterwards took a
    // core from the requests: the largest share of the write path's latency tail (BENCHMARKS.md).
    // A failed checkpoint is only logged: the projector's next commit meets the same disk.
    impl->checkpointer = std::make_unique<WalCheckpointer>(WalCheckpointer::Options{
        .path = path,
        .thread_name = "wallex-readckpt",
        .synchronous = "NORMAL",
        .frames_to_settle = kCheckpointFramesToSettle,
        .failed = {},
        .on_error = {}});
    if (auto s = impl->checkpointer->start(); !s) return fail(s.error());
    impl->checkpointer->attach(impl->db);
  }
  return std::unique_ptr<SqliteReadStore>(new SqliteReadStore(std::move(impl)));
}

Status<StoreError> SqliteReadStore::begin_write() {
  if (impl_->checkpointer) impl_->checkpointer->settle(impl_->db);
  return run_statement(impl_->db, impl_->begin, "begin");
}
Status<StoreError> SqliteReadStore::commit() {
  if (auto s = impl_->write_held(); !s) return s;
  return run_statement(impl_->db, impl_->commit, "commit");
}
void SqliteReadStore::rollback() {
  impl_->ledger_rows.live_keys.clear();
  impl_->event_rows.live_keys.clear();
  impl_->ledger_rows.held_count = 0;
  impl_->event_rows.held_count = 0;
  // After some errors SQLite has already rolled back; a failing ROLLBACK changes nothing.
  if (sqlite3_get_autocommit(impl_->db) == 0)
    (void)run_statement(impl_->db, impl_->rollback, "rollback");
}
// A Kafka consumer-group projector does not call this (nor group_live_rows): its key rows go in
// at commit(), so a key row that conflicts (possible only in a read.db that is inconsistent
// already: the row it indexes would conflict first) fails the batch as a store failure rather
// than as its message's.
Status<StoreError> SqliteReadStore::flush_writes() { return impl_->write_held(); }

void SqliteReadStore::group_live_rows(bool on) {
  WALLEX_CHECK(impl_->ledger_rows.held_count == 0 && impl_->event_rows.held_count == 0);
  impl_->group_rows = on;
}

Status<StoreError> SqliteReadStore::begin_read() {
  if (auto s = exec(impl_->db, "BEGIN", "begin read"); !s) return s;
  // A deferred transaction takes its snapshot at the first read: take it now.
  auto count = query_int(impl_->db, "SELECT count(*) FROM checkpoints");
  if (!count) {
    end_read();
    return fail(count.error());
  }
  return Ok{};
}
void SqliteReadStore::end_read() {
  if (sqlite3_get_autocommit(impl_->db) == 0) (void)exec(impl_->db, "COMMIT", "end read");
}

Result<std::vector<Checkpoint>, StoreError> SqliteReadStore::checkpoints() {
  return collect<Checkpoint>(
      impl_->db, impl_->queries.checkpoints, "reading checkpoints",
      [](const Statement& s) -> Result<Checkpoint, StoreError> {
        const std::optional<ProjectorId> id = projector_from_name(s.text(0));
        if (!id) {
          return fail(corrupt("unknown projector " + std::string(s.text(0)) + " in checkpoints"));
        }
        return Checkpoint{*id, s.int64(1), s.int64(2)};
      });
}

Status<StoreError> SqliteReadStore::set_checkpoint(const Checkpoint& checkpoint) {
  Statement& s = impl_->queries.set_checkpoint;
  s.bind(1, projector_name(checkpoint.projector));
  s.bind(2, checkpoint.position);
  s.bind(3, checkpoint.updated_at_ms);
  return run_statement(impl_->db, s, "writing a checkpoint");
}

// ---------------------------------------------------------------------------------- read model

Result<std::optional<WalletState>, StoreError> SqliteReadStore::read_wallet(std::string_view id) {
  Statement& s = impl_->writes().read_wallet;
  s.bind(1, id);
  return first_of(collect<WalletState>(impl_->db, s, "reading the read model", wallet_row));
}

Status<StoreError> SqliteReadStore::put_read_wallet(const WalletState& wallet) {
  Statement& s = impl_->writes().put_read_wallet;
  bind_wallet_columns(s, wallet);
  if (auto st = run_statement(impl_->db, s, "writing the read model"); !st) return st;
  if (sqlite3_changes(impl_->db) != 1) {
    return fail(corrupt("read model of wallet " + wallet.id + " would move back to version " +
                        std::to_string(wallet.version)));
  }
  return Ok{};
}

Result<std::vector<WalletState>, StoreError> SqliteReadStore::list_read_wallets(
    std::string_view after_id, const std::optional<std::string>& owner_id, std::size_t limit) {
  Statement& s = owner_id ? impl_->queries.list_wallets_of_owner : impl_->queries.list_wallets;
  s.bind(1, after_id);
  s.bind(2, static_cast<std::int64_t>(limit));
  if (owner_id) s.bind(3, std::string_view(*owner_id));
  return collect<WalletState>(impl_->db, s, "listing wallets", wallet_row);
}

// ---------------------------------------------------------------------------------- ledger

Result<std::optional<LedgerWallet>, StoreError> SqliteReadStore::ledger_wallet(
    std::string_view id) {
  Statement& s = impl_->writes().ledger_wallet;
  s.bind(1, id);
  return first_of(collect<LedgerWallet>(impl_->db, s, "reading ledger totals", ledger_wallet_row));
}

Status<StoreError> SqliteReadStore::put_ledger_wallet(const LedgerWallet& wallet) {
  Statement& s = impl_->writes().put_ledger_wallet;
  s.bind(1, wallet.wallet_id);
  s.bind(2, wallet.version);
  s.bind(3, wallet.balance.minor());
  s.bind(4, wallet.credits_minor);
  s.bind(5, wallet.debits_minor);
  s.bind(6, wallet.entry_count);
  s.bind(7, wallet.wallet_key);
  if (auto st = run_statement(impl_->db, s, "writing ledger totals"); !st) return st;
  // A created wallet is written at version 0 once; afterwards the version must rise.
  if (sqlite3_changes(impl_->db) != 1) {
    return fail(corrupt("ledger totals of wallet " + wallet.wallet_id +
                        " would move back to version " + std::to_string(wallet.version)));
  }
  return Ok{};
}

Result<std::vector<LedgerWallet>, StoreError> SqliteReadStore::scan_ledger_wallets(
    std::string_view after_id, std::size_t limit) {
  Statement& s = impl_->queries.scan_ledger_wallets;
  s.bind(1, after_id);
  s.bind(2, static_cast<std::int64_t>(limit));
  return collect<LedgerWallet>(impl_->db, s, "scanning ledger totals", ledger_wallet_row);
}

Status<StoreError> SqliteReadStore::insert_entry(const LedgerEntry& entry) {
  return impl_->insert_row(entry, {entry.wallet_key, entry.created_at_ms, entry.position},
                           impl_->ledger_rows, &WriteStatements::insert_entry, &Impl::bind_entry,
                           "writing a ledger entry");
}

Result<std::vector<LedgerEntry>, StoreError> SqliteReadStore::find_entries(
    const EntryFilter& filter) {
  Statement& s = impl_->queries.find_entries[(filter.wallet_id ? 2 : 0) + (filter.type ? 1 : 0)];
  if (filter.wallet_id) s.bind(1, std::string_view(*filter.wallet_id));
  s.bind(2, filter.start_ms.value_or(INT64_MIN));
  s.bind(3, filter.end_ms.value_or(INT64_MAX));
  if (filter.type) s.bind(4, entry_type_name(*filter.type));
  s.bind(5, static_cast<std::int64_t>(filter.limit));
  s.bind(6, static_cast<std::int64_t>(filter.offset));
  return impl_->with_documents(collect<LedgerEntry>(impl_->db, s, "reading the ledger", entry_row));
}

Result<std::vector<LedgerEntry>, StoreError> SqliteReadStore::entries_by_reference(
    std::string_view reference_id, std::size_t limit) {
  Statement& s = impl_->queries.entries_by_reference;
  s.bind(1, reference_id);
  s.bind(2, static_cast<std::int64_t>(limit));
  s.bind(3, reference_hash(reference_id));
  return impl_->with_documents(collect<LedgerEntry>(impl_->db, s, "reading the ledger", entry_row));
}

Result<std::vector<LedgerEntry>, StoreError> SqliteReadStore::scan_entries(
    std::int64_t after_position, std::size_t limit) {
  Statement& s = impl_->queries.scan_entries;
  s.bind(1, after_position);
  s.bind(2, static_cast<std::int64_t>(limit));
  return impl_->with_documents(
      collect<LedgerEntry>(impl_->db, s, "scanning the ledger", entry_row));
}

// ---------------------------------------------------------------------------------- wallet events

Result<std::optional<EventWallet>, StoreError> SqliteReadStore::event_wallet(std::string_view id) {
  Statement& s = impl_->writes().event_wallet;
  s.bind(1, id);
  return first_of(
      collect<EventWallet>(impl_->db, s, "reading the event copy's state", event_wallet_row));
}

Status<StoreError> SqliteReadStore::put_event_wallet(const EventWallet& wallet) {
  Statement& s = impl_->writes().put_event_wallet;
  s.bind(1, wallet.wallet_id);
  s.bind(2, wallet.wallet_key);
  s.bind(3, wallet.version);
  s.bind(4, wallet.balance.minor());
  if (auto st = run_statement(impl_->db, s, "writing the event copy's state"); !st) return st;
  if (sqlite3_changes(impl_->db) != 1) {
    return fail(corrupt("event copy of wallet " + wallet.wallet_id +
                        " would move back to version " + std::to_string(wallet.version)));
  }
  return Ok{};
}

Result<std::vector<EventWallet>, StoreError> SqliteReadStore::scan_event_wallets(
    std::string_view after_id, std::size_t limit) {
  Statement& s = impl_->queries.scan_event_wallets;
  s.bind(1, after_id);
  s.bind(2, static_cast<std::int64_t>(limit));
  return collect<EventWallet>(impl_->db, s, "scanning the event copy's state", event_wallet_row);
}

Status<StoreError> SqliteReadStore::insert_wallet_event(const WalletEventRow& row) {
  return impl_->insert_row(row, {row.wallet_key, row.version, row.position}, impl_->event_rows,
                           &WriteStatements::insert_wallet_event, &Impl::bind_wallet_event,
                           "writing a wallet event");
}

Result<std::vector<std::string>, StoreError> SqliteReadStore::index_problems(std::size_t limit) {
  auto fingerprint = [this](Statement& s) -> Result<std::vector<std::int64_t>, StoreError> {
    auto rows = collect<std::vector<std::int64_t>>(
        impl_->db, s, "fingerprinting",
        [](const Statement& row) -> Result<std::vector<std::int64_t>, StoreError> {
          std::vector<std::int64_t> values;
          for (int i = 0; i < 7; ++i) values.push_back(row.int64(i));
          return values;
        });
    if (!rows) return fail(rows.error());
    return rows.value().at(0);
  };
  std::vector<std::string> problems;
  // SQLite's own structure first: pages, B-trees, and (what quick_check skips) that every
  // index holds exactly its table's rows.
  auto checked = query_rows(impl_->db, "PRAGMA integrity_check(" + std::to_string(limit) + ")");
  if (!checked) return fail(checked.error());
  for (std::string& line : checked.value()) {
    if (line != "ok") problems.push_back("read.db integrity_check: " + std::move(line));
  }
  QueryStatements& q = impl_->queries;
  const std::tuple<Statement*, Statement*, Statement*> pairs[] = {
      {&q.ledger_fingerprint, &q.ledger_keys_fingerprint, &q.ledger_key_problems},
      {&q.events_fingerprint, &q.event_keys_fingerprint, &q.event_key_problems}};
  for (const auto& [rows, keys, search] : pairs) {
    auto of_rows = fingerprint(*rows);
    if (!of_rows) return fail(of_rows.error());
    auto of_keys = fingerprint(*keys);
    if (!of_keys) return fail(of_keys.error());
    if (of_rows.value() == of_keys.value()) continue;
    search->bind(1, static_cast<std::int64_t>(limit));
    auto found = collect<std::string>(impl_->db, *search, "checking key rows", text_row);
    if (!found) return fail(found.error());
    if (found.value().empty()) found.value().push_back("rows and key rows differ");
    problems.insert(problems.end(), found.value().begin(), found.value().end());
  }
  q.reference_hash_problems.bind(1, static_cast<std::int64_t>(limit));
  auto mismatched = collect<std::string>(impl_->db, q.reference_hash_problems,
                                         "checking reference hashes", text_row);
  if (!mismatched) return fail(mismatched.error());
  problems.insert(problems.end(), mismatched.value().begin(), mismatched.value().end());
  if (problems.size() > limit) problems.resize(limit);
  return problems;
}

Result<std::vector<WalletEventRow>, StoreError> SqliteReadStore::wallet_events(
    std::string_view wallet_id, std::int64_t from_version, std::size_t limit) {
  Statement& s = impl_->queries.wallet_events;
  s.bind(1, wallet_id);
  s.bind(2, from_version);
  s.bind(3, static_cast<std::int64_t>(limit));
  return impl_->with_documents(
      collect<WalletEventRow>(impl_->db, s, "reading wallet events", wallet_event_row));
}

Result<std::optional<WalletEventRow>, StoreError> SqliteReadStore::wallet_event_at(
    std::string_view wallet_id, TimestampMs at_ms) {
  Statement& s = impl_->queries.wallet_event_at;
  s.bind(1, wallet_id);
  s.bind(2, at_ms);
  return first_of(impl_->with_documents(
      collect<WalletEventRow>(impl_->db, s, "reading wallet events", wallet_event_row)));
}

Result<std::vector<WalletEventRow>, StoreError> SqliteReadStore::scan_wallet_events(
    std::int64_t after_position, std::size_t limit) {
  Statement& s = impl_->queries.scan_wallet_events;
  s.bind(1, after_position);
  s.bind(2, static_cast<std::int64_t>(limit));
  return impl_->with_documents(
      collect<WalletEventRow>(impl_->db, s, "scanning wallet events", wallet_event_row));
}

// ---------------------------------------------------------------------------------- rebuild
//
// Two ways, chosen by whether another connection has read.db open:
//  - Offline (the server is stopped: read.db can leave WAL mode, which needs exclusive access):
//    everything is written into a fresh file read.db.rebuild (attached as schema "rebuild", no
//    journal, no fsync until the end), which is then fsync'd and renamed over read.db: the
//    rename is the atomic swap, and nothing of the old file has to be read or freed.
//  - Online (a server is running): fresh _next tables inside read.db, swapped in by one
//    transaction (DROP the live tables, RENAME the new ones, write the checkpoints). The running
//    projector re-reads its checkpoints in every transaction and carries on from the swap.
// A crash while loading leaves only the side file or the _next tables, removed by the next
// rebuild; only the swap itself is made durable.

namespace {

std::string side_path(const std::string& data_dir) {
  return SqliteReadStore::path_in(data_dir) + ".rebuild";
}

Status<StoreError> fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(StoreError{StoreErrorKind::kIo, "cannot open " + path + " to sync it"});
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return fail(StoreError{StoreErrorKind::kIo, "fsync of " + path + " failed"});
  return Ok{};
}

std::string checkpoint_inserts(std::string_view prefix,
                               const std::vector<Checkpoint>& checkpoints) {
  std::string script = "DELETE FROM " + std::string(prefix) + "checkpoints;";
  for (const Checkpoint& c : checkpoints) {
    script += "INSERT INTO " + std::string(prefix) +
              "checkpoints (projector, position, updated_at_ms) VALUES ('" +
              std::string(projector_name(c.projector)) + "', " + std::to_string(c.position) + ", " +
              std::to_string(c.updated_at_ms) + ");";
  }
  return script;
}

}  // namespace

Status<StoreError> SqliteReadStore::begin_rebuild() {
  Impl& impl = *impl_;
  if (impl.rebuild != Impl::Rebuild::kNone) {
    return fail(StoreError{StoreErrorKind::kOther, "a rebuild is already in progress"});
  }
  // A big page cache and no fsync while loading: nothing loaded is visible before the swap.
  if (auto s =
          exec(impl.db, "PRAGMA cache_size = -262144; PRAGMA synchronous = OFF", "configuring");
      !s) {
    return s;
  }
  impl.ledger_rows.pending_keys.clear();
  impl.event_rows.pending_keys.clear();
  auto mode = query_text(impl.db, "PRAGMA journal_mode = DELETE");
  std::string prefix, suffix, script;
  if (mode && mode.value() == "delete") {
    const std::string side = side_path(impl.data_dir);
    if (side.find('\'') != std::string::npos) {
      return fail(StoreError{StoreErrorKind::kOther, "data directory names may not contain '"});
    }
    std::error_code ec;
    std::filesystem::remove(side, ec);
    std::filesystem::remove(side + "-journal", ec);
    script = "ATTACH DATABASE '" + side +
             "' AS rebuild; PRAGMA rebuild.journal_mode = OFF; PRAGMA rebuild.synchronous = OFF;"
             " PRAGMA rebuild.cache_size = -262144;";
    prefix = "rebuild.";
    impl.rebuild = Impl::Rebuild::kSideFile;
  } else {
    suffix = "_next";
    impl.rebuild = Impl::Rebuild::kNextTables;
  }
  script += "BEGIN IMMEDIATE;";
  for (const char* table : kTableNames) {
    script += "DROP TABLE IF EXISTS " + prefix + table + suffix + ";";
  }
  script += with_names(kTables, prefix, suffix);
  script += "COMMIT;";
  auto next = std::make_unique<WriteStatements>();
  auto created = exec(impl.db, script, "creating fresh tables");
  if (created) created = next->prepare(impl.db, prefix, suffix);
  if (!created) {
    rollback();
    impl.rebuild = Impl::Rebuild::kNone;
    return created;
  }
  impl.next = std::move(next);
  return Ok{};
}

Status<StoreError> SqliteReadStore::finish_rebuild(const std::vector<Checkpoint>& checkpoints) {
  Impl& impl = *impl_;
  if (!impl.next) return fail(StoreError{StoreErrorKind::kOther, "no rebuild in progress"});
  if (auto s = begin_write(); !s) return s;
  if (auto s = impl.write_pending_keys(); !s) {
    rollback();
    return s;
  }
  if (auto s = commit(); !s) {
    rollback();
    return s;
  }
  impl.next.reset();  // finalizes the statements on the new tables before they are renamed

  if (impl.rebuild == Impl::Rebuild::kSideFile) {
    const std::string side = side_path(impl.data_dir);
    const std::string script =
        "PRAGMA rebuild.synchronous = FULL; PRAGMA threads = 2; BEGIN IMMEDIATE;" +
        with_names(kIndexes + kCheckpointTable, "rebuild.", "") +
        checkpoint_inserts("rebuild.", checkpoints) +
        "PRAGMA rebuild.application_id = " + std::to_string(kReadApplicationId) +
        "; PRAGMA rebuild.user_version = " + std::to_string(kReadSchemaVersion) +
        "; COMMIT; DETACH DATABASE rebuild;";
    if (auto s = exec(impl.db, script, "indexing the rebuilt read side"); !s) {
      rollback();
      return s;
    }
    if (auto s = fsync_path(side, false); !s) return s;
    // The swap. We are the only user of read.db (it left WAL mode), so no -wal or -shm file
    // belongs to it any more; remove strays so they can never be applied to the new file.
    const std::string path = path_in(impl.data_dir);
    std::error_code ec;
    std::filesystem::rename(side, path, ec);
    if (ec)
      return fail(StoreError{StoreErrorKind::kIo, "cannot rename " + side + ": " + ec.message()});
    std::filesystem::remove(path + "-wal", ec);
    std::filesystem::remove(path + "-shm", ec);
    if (auto s = fsync_path(impl.data_dir, true); !s) return s;
    auto reopened = open(impl.data_dir, Access::kReadWrite);
    if (!reopened) return fail(reopened.error());
    impl_ = std::move(reopened.value()->impl_);  // the old connection (old file) closes here
    return Ok{};
  }

  // Online: one transaction replaces the live tables and their checkpoints.
  if (auto s = exec(impl.db, "PRAGMA synchronous = FULL", "configuring"); !s) return s;
  std::string script = "BEGIN IMMEDIATE;";
  for (const char* table : kTableNames) {
    script += std::string("DROP TABLE ") + table + "; ALTER TABLE " + table + "_next RENAME TO " +
              table + ";";
  }
  script += with_names(kIndexes, "", "");
  script += checkpoint_inserts("", checkpoints);
  script += "COMMIT;";
  auto swapped = exec(impl.db, script, "swapping in the rebuilt tables");
  if (!swapped) rollback();
  impl.rebuild = Impl::Rebuild::kNone;
  (void)exec(impl.db, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing");
  (void)exec(impl.db, "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536", "configuring");
  return swapped;
}

// ================================================================================ SqliteEventLog

struct SqliteEventLog::Impl {
  sqlite3* db = nullptr;
  Statement read_events, max_position;
  const std::atomic<std::int64_t>* durable_head = nullptr;
  std::string wal_path;
  int wal_fd = -1;
  ~Impl() {
    if (wal_fd >= 0) ::close(wal_fd);
    sqlite3_close_v2(db);
  }

  // Makes every commit the current snapshot holds durable (see the class comment). No WAL:
  // everything is in the database file, which SQLite synced when it checkpointed.
  Status<StoreError> sync_wal() {
    if (wal_fd < 0) {
      wal_fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd < 0) {
        if (errno == ENOENT) return Ok{};
        return fail(system_error("cannot open " + wal_path, errno));
      }
    }
    return fdatasync_file(wal_fd, wal_path);
  }
};

SqliteEventLog::SqliteEventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteEventLog::~SqliteEventLog() = default;

Result<std::unique_ptr<SqliteEventLog>, StoreError> SqliteEventLog::open(
    const std::string& data_dir, const std::atomic<std::int64_t>* durable_head) {
  const std::string path = (std::filesystem::path(data_dir) / "wallex.db").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return fail(StoreError{StoreErrorKind::kIo, "no Wallex store at " + path});
  }
  auto impl = std::make_unique<Impl>();
  StoreError error;
  impl->db = open_connection(path, SQLITE_OPEN_READONLY, &error);
  if (impl->db == nullptr) return fail(error);
  if (auto s = exec(impl->db, "PRAGMA busy_timeout = 10000; PRAGMA query_only = 1;",
                    "configuring " + path);
      !s) {
    return fail(s.error());
  }
  auto application_id = query_int(impl->db, "PRAGMA application_id");
  if (!application_id) return fail(application_id.error());
  if (application_id.value() != kStoreApplicationId) {
    return fail(StoreError{StoreErrorKind::kCorrupt, path + " is not a Wallex store"});
  }
  auto user_version = query_int(impl->db, "PRAGMA user_version");
  if (!user_version) return fail(user_version.error());
  if (user_version.value() > kSqliteSchemaVersion) {
    return fail(StoreError{StoreErrorKind::kSchemaTooNew,
                           path + " was written by a newer Wallex (schema version " +
                               std::to_string(user_version.value()) + ")"});
  }
  const std::pair<Statement*, const char*> statements[] = {
      {&impl->read_events,
       "SELECT position, wallet_id, version, type, data, metadata FROM events"
       " WHERE position > ?1 ORDER BY position LIMIT ?2"},
      {&impl->max_position, "SELECT COALESCE(MAX(position), 0) FROM events"},
  };
  for (const auto& [statement, sql] : statements) {
    const int rc = statement->prepare(impl->db, sql);
    if (rc != SQLITE_OK) return fail(sqlite_error(impl->db, rc, sql));
  }
  impl->durable_head = durable_head;
  impl->wal_path = path + "-wal";
  return std::unique_ptr<SqliteEventLog>(new SqliteEventLog(std::move(impl)));
}

Result<std::vector<LoggedEvent>, StoreError> SqliteEventLog::read_events(
    std::int64_t after_position, std::size_t limit) {
  return read_events_via_into(after_position, limit);
}

Status<StoreError> SqliteEventLog::read_events_into(std::int64_t after_position,
                                                    std::size_t limit,
                                                    std::vector<LoggedEvent>& events) {
  events.clear();
  if (impl_->durable_head != nullptr) {
    const std::int64_t head = impl_->durable_head->load();
    if (after_position >= head) return Ok{};
    // Positions are gap-free: exactly head - after_position events are durable past it.
    limit = static_cast<std::size_t>(
        std::min<std::int64_t>(static_cast<std::int64_t>(limit), head - after_position));
  } else if (sqlite3_get_autocommit(impl_->db) != 0) {
    if (auto s = begin_snapshot(); !s) return fail(s.error());
    auto read = read_events_into(after_position, limit, events);
    end_snapshot();
    return read;
  }
  Statement& s = impl_->read_events;
  ResetOnExit reset(s);
  s.bind(1, after_position);
  s.bind(2, static_cast<std::int64_t>(limit));
  events.reserve(std::min<std::size_t>(limit, 65'536));
  int rc = SQLITE_OK;
  while ((rc = s.step()) == SQLITE_ROW) {
    auto decoded =
        decode_stored_event(s.int64(0), s.text(1), s.int64(2), s.text(3), s.text(4), s.text(5));
    if (!decoded) {
      events.clear();
      return fail(corrupt(decoded.error()));
    }
    LoggedEvent& logged = events.emplace_back();
    static_cast<StoredEvent&>(logged) = std::move(decoded).value();
    logged.data_json = std::string(s.text(4));
    logged.metadata_json = std::string(s.text(5));
  }
  if (rc != SQLITE_DONE) {
    events.clear();
    return fail(sqlite_error(impl_->db, rc, "reading events"));
  }
  return Ok{};
}

Result<std::int64_t, StoreError> SqliteEventLog::last_position() {
  Statement& s = impl_->max_position;
  ResetOnExit reset(s);
  const int rc = s.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(impl_->db, rc, "reading the log head"));
  if (impl_->durable_head != nullptr) return std::min(s.int64(0), impl_->durable_head->load());
  return s.int64(0);
}

Result<std::vector<WalletState>, StoreError> SqliteEventLog::load_wallets() {
  // The snapshot in the wallets table with the log's events after it replayed (write_model.h).
  auto image = read_write_model(impl_->db);
  if (!image) return fail(image.error());
  return image.value().wallets();
}

Status<StoreError> SqliteEventLog::begin_snapshot() {
  if (auto s = exec(impl_->db, "BEGIN", "begin snapshot"); !s) return s;
  auto head = last_position();  // the first read takes the snapshot
  if (!head) {
    end_snapshot();
    return fail(head.error());
  }
  if (impl_->durable_head == nullptr) {
    if (auto synced = impl_->sync_wal(); !synced) {
      end_snapshot();
      return synced;
    }
  }
  return Ok{};
}

void SqliteEventLog::end_snapshot() {
  if (sqlite3_get_autocommit(impl_->db) == 0) (void)exec(impl_->db, "COMMIT", "end snapshot");
}

}  // namespace wallex

// ================================================================================ consumer state

namespace wallex {

Result<std::vector<PartitionOffset>, StoreError> SqliteReadStore::consumer_offsets(
    std::string_view group, std::string_view topic) {
  if (!impl_->has_consumer_tables) return std::vector<PartitionOffset>{};
  Statement& s = impl_->consumer_offsets;
  s.bind(1, group);
  s.bind(2, topic);
  return collect<PartitionOffset>(
      impl_->db, s, "reading consumer offsets",
      [](const Statement& row) -> Result<PartitionOffset, StoreError> {
        return PartitionOffset{static_cast<int>(row.int64(0)), row.int64(1)};
      });
}

Status<StoreError> SqliteReadStore::set_consumer_offset(std::string_view group,
                                                        std::string_view topic,
                                                        const PartitionOffset& offset) {
  WALLEX_CHECK(impl_->has_consumer_tables);
  Statement& s = impl_->set_consumer_offset;
  s.bind(1, group);
  s.bind(2, topic);
  s.bind(3, static_cast<std::int64_t>(offset.partition));
  s.bind(4, offset.next_offset);
  return run_statement(impl_->db, s, "writing a consumer offset");
}

Result<std::optional<std::int64_t>, StoreError> SqliteReadStore::consumer_wallet_version(
    std::string_view group, std::string_view wallet_id) {
  if (!impl_->has_consumer_tables) return std::optional<std::int64_t>{};
  Statement& s = impl_->consumer_wallet_version;
  s.bind(1, group);
  s.bind(2, wallet_id);
  return first_of(collect<std::int64_t>(
      impl_->db, s, "reading a consumer wallet version",
      [](const Statement& row) -> Result<std::int64_t, StoreError> { return row.int64(0); }));
}

Status<StoreError> SqliteReadStore::set_consumer_wallet_version(std::string_view group,
                                                                std::string_view wallet_id,
                                                                std::int64_t version) {
  WALLEX_CHECK(impl_->has_consumer_tables);
  Statement& s = impl_->set_consumer_wallet_version;
  s.bind(1, group);
  s.bind(2, wallet_id);
  s.bind(3, version);
  return run_statement(impl_->db, s, "writing a consumer wallet version");
}

Status<StoreError> SqliteReadStore::add_dead_letter(std::string_view group,
                                                    const DeadLetterRecord& letter) {
  WALLEX_CHECK(impl_->has_consumer_tables);
  Statement& s = impl_->add_dead_letter;
  s.bind(1, group);
  s.bind(2, std::string_view(letter.topic));
  s.bind(3, static_cast<std::int64_t>(letter.partition));
  s.bind(4, letter.offset);
  s.bind(5, static_cast<std::int64_t>(letter.attempts));
  s.bind(6, std::string_view(letter.error));
  s.bind(7, letter.at_ms);
  return run_statement(impl_->db, s, "recording a dead letter");
}

Result<std::int64_t, StoreError> SqliteReadStore::dead_letter_count(std::string_view group) {
  if (!impl_->has_consumer_tables) return std::int64_t{0};
  Statement& s = impl_->dead_letter_count;
  s.bind(1, group);
  auto rows = collect<std::int64_t>(
      impl_->db, s, "counting dead letters",
      [](const Statement& row) -> Result<std::int64_t, StoreError> { return row.int64(0); });
  if (!rows) return fail(rows.error());
  return rows.value().empty() ? 0 : rows.value().front();
}

Result<std::vector<std::string>, StoreError> SqliteReadStore::consumer_groups() {
  if (!impl_->has_consumer_tables) return std::vector<std::string>{};
  return collect<std::string>(impl_->db, impl_->consumer_groups, "listing consumer groups",
                              text_row);
}

}  // namespace wallex
