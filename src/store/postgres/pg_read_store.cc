#include "store/postgres/pg_read_store.h"

#include <climits>
#include <unordered_set>

#include "store/event_codec.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_migrations.h"
#include "store/read_side_columns.h"

namespace wallex {
namespace {

// 'WALXRBLD': held (session level) by the one rebuild that may run at a time.
constexpr std::int64_t kRebuildLockKey = 6287390496923406916;

constexpr const char* kWalletColumns = read_columns::kWallet;
constexpr const char* kLedgerWalletColumns = read_columns::kLedgerWallet;
constexpr const char* kEntryColumns = read_columns::kEntry;
constexpr const char* kWalletEventColumns = read_columns::kWalletEvent;
constexpr const char* kEventWalletColumns = read_columns::kEventWallet;

// The tables a rebuild replaces; the state tables keep their primary keys while being filled
// (the projectors upsert them), the two big ones get theirs when the rebuild finishes.
struct TableSpec {
  const char* name;
  bool keys_while_filling;
  const char* finish_sql;  // run on <name>_next before the swap ('#' = the table's name)
};
constexpr TableSpec kRebuiltTables[] = {
    {"read_wallets", true, "CREATE INDEX ON # (owner_id, id)"},
    {"ledger_wallets", true, ""},
    {"ledger_entries", false,
     "ALTER TABLE # ADD PRIMARY KEY (position); CREATE INDEX ON # (wallet_id, created_at_ms,"
     " position); CREATE INDEX ON # (created_at_ms, position); CREATE INDEX ON # (reference_id)"},
    {"wallet_events", false,
     "ALTER TABLE # ADD PRIMARY KEY (position); CREATE UNIQUE INDEX ON # (wallet_id, version)"},
    {"event_wallets", true, ""},
};

StoreError corrupt(std::string message) {
  return StoreError{StoreErrorKind::kCorrupt, std::move(message)};
}

std::string replace_all(std::string text, char placeholder, const std::string& with) {
  std::string out;
  for (const char c : text) {
    if (c == placeholder) {
      out += with;
    } else {
      out += c;
    }
  }
  return out;
}

Result<Money, StoreError> money_at(const PgResult& r, int row, int column, std::string_view what) {
  const std::int64_t minor = r.int64(row, column);
  if (minor < 0 || minor > Money::kBalanceMaxMinor) {
    return fail(corrupt(std::string(what) + ": amount out of range: " + std::to_string(minor)));
  }
  return Money::from_minor(minor);
}

std::optional<std::string> optional_at(const PgResult& r, int row, int column) {
  if (r.is_null(row, column)) return std::nullopt;
  return std::string(r.text(row, column));
}

Result<WalletState, StoreError> wallet_at(const PgResult& r, int row) {
  WalletState w;
  w.id = std::string(r.text(row, 0));
  w.owner_id = std::string(r.text(row, 1));
  auto balance = money_at(r, row, 2, "read_wallets " + w.id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  w.version = r.int64(row, 3);
  w.created_at_ms = r.int64(row, 4);
  w.updated_at_ms = r.int64(row, 5);
  return w;
}

Result<LedgerWallet, StoreError> ledger_wallet_at(const PgResult& r, int row) {
  LedgerWallet w;
  w.wallet_id = std::string(r.text(row, 0));
  w.version = r.int64(row, 1);
  auto balance = money_at(r, row, 2, "ledger_wallets " + w.wallet_id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  w.credits_minor = r.int64(row, 3);
  w.debits_minor = r.int64(row, 4);
  w.entry_count = r.int64(row, 5);
  w.wallet_key = r.int64(row, 6);
  return w;
}

Result<LedgerEntry, StoreError> entry_at(const PgResult& r, int row) {
  LedgerEntry e;
  e.position = r.int64(row, 0);
  const std::string what = "ledger entry " + std::to_string(e.position);
  if (e.position <= 0) return fail(corrupt(what + ": position must be positive"));
  e.wallet_id = std::string(r.text(row, 1));
  e.version = r.int64(row, 2);
  const std::optional<EntryType> type = entry_type_from_name(r.text(row, 3));
  if (!type) return fail(corrupt(what + ": unknown type " + std::string(r.text(row, 3))));
  e.type = *type;
  auto amount = money_at(r, row, 4, what);
  if (!amount) return fail(amount.error());
  auto before = money_at(r, row, 5, what);
  if (!before) return fail(before.error());
  auto after = money_at(r, row, 6, what);
  if (!after) return fail(after.error());
  e.amount = amount.value();
  e.balance_before = before.value();
  e.balance_after = after.value();
  e.description = optional_at(r, row, 7);
  e.reference_id = std::string(r.text(row, 8));
  e.related_wallet_id = optional_at(r, row, 9);
  e.metadata = std::string(r.text(row, 10));
  e.created_at_ms = r.int64(row, 11);
  e.wallet_key = r.int64(row, 12);
  return e;
}

Result<WalletEventRow, StoreError> wallet_event_at_row(const PgResult& r, int row) {
  WalletEventRow e;
  e.position = r.int64(row, 0);
  const std::string what = "wallet event " + std::to_string(e.position);
  e.wallet_id = std::string(r.text(row, 1));
  e.version = r.int64(row, 2);
  const std::optional<EventType> type = event_type_from_name(r.text(row, 3));
  if (!type) return fail(corrupt(what + ": unknown type " + std::string(r.text(row, 3))));
  e.type = *type;
  e.data = std::string(r.text(row, 4));
  e.metadata = std::string(r.text(row, 5));
  e.occurred_at_ms = r.int64(row, 6);
  auto balance = money_at(r, row, 7, what);
  if (!balance) return fail(balance.error());
  e.balance_after = balance.value();
  e.wallet_key = r.int64(row, 8);
  return e;
}

Result<EventWallet, StoreError> event_wallet_row_at(const PgResult& r, int row) {
  EventWallet w;
  w.wallet_id = std::string(r.text(row, 0));
  w.wallet_key = r.int64(row, 1);
  w.version = r.int64(row, 2);
  auto balance = money_at(r, row, 3, "event_wallets " + w.wallet_id);
  if (!balance) return fail(balance.error());
  w.balance = balance.value();
  return w;
}

template <typename Row, typename Convert>
Result<std::vector<Row>, StoreError> rows_of(Result<PgResult, StoreError> result,
                                             Convert&& convert) {
  if (!result) return fail(result.error());
  std::vector<Row> rows;
  rows.reserve(static_cast<std::size_t>(result.value().rows()));
  for (int row = 0; row < result.value().rows(); ++row) {
    auto converted = convert(result.value(), row);
    if (!converted) return fail(converted.error());
    rows.push_back(std::move(converted).value());
  }
  return rows;
}

template <typename Row>
Result<std::optional<Row>, StoreError> first_of(Result<std::vector<Row>, StoreError> rows) {
  if (!rows) return fail(rows.error());
  if (rows.value().empty()) return std::optional<Row>();
  return std::optional<Row>(std::move(rows.value().front()));
}

std::optional<std::string_view> text(std::string_view value) { return value; }
std::optional<std::string_view> text(const std::string& value) { return std::string_view(value); }
std::optional<std::string_view> text(const std::optional<std::string>& value) {
  if (!value) return std::nullopt;
  return std::string_view(*value);
}

// Rows of one table waiting to be written: one array literal per column.
struct Buffer {
  std::vector<ArrayLiteral> columns;
  std::unordered_set<std::string> ids;  // state tables: an id twice in one statement is an error
  std::size_t rows = 0;
  explicit Buffer(std::size_t column_count) : columns(column_count) {}
  void clear() {
    for (ArrayLiteral& c : columns) c = ArrayLiteral();
    ids.clear();
    rows = 0;
  }
};

}  // namespace

struct PgReadStore::Impl {
  std::string url;
  std::unique_ptr<PgConnection> connection;
  std::string suffix;  // "" or "_next" while rebuilding
  bool in_transaction = false;
  bool holds_rebuild_lock = false;

  Buffer read_wallets{6}, ledger_wallets{7}, entries{13}, event_wallets{4}, wallet_events{9};

  std::string table(const char* name) const { return std::string(name) + suffix; }

  Status<StoreError> connect() {
    if (connection && connection->alive()) return Ok{};
    auto connected = PgConnection::connect(url);
    if (!connected) return fail(connected.error());
    if (auto current = require_current_schema(*connected.value()); !current) {
      return fail(current.error());
    }
    // The projector waits for another instance's projection transaction (or a rebuild's swap):
    // contention, never an error.
    if (auto set = connected.value()->exec("SET lock_timeout = 0"); !set) return fail(set.error());
    connection = std::move(connected).value();
    return Ok{};
  }

  Result<PgResult, StoreError> exec(const std::string& sql, const PgParams& params = {}) {
    if (!in_transaction) {
      if (auto c = connect(); !c) return fail(c.error());
    }
    if (params.empty()) return connection->exec(sql);
    return connection->exec(sql, params);
  }

  std::size_t buffered() const {
    return read_wallets.rows + ledger_wallets.rows + entries.rows + event_wallets.rows +
           wallet_events.rows;
  }

  void clear_buffers() {
    read_wallets.clear();
    ledger_wallets.clear();
    entries.clear();
    event_wallets.clear();
    wallet_events.clear();
  }

  // One statement: INSERT ... SELECT * FROM unnest(columns) [ON CONFLICT ...]; every row must be
  // written (fewer means a state row would have moved back: damage, as in read.db).
  Status<StoreError> flush_one(Buffer& buffer, const std::string& insert, const char* types[],
                               const std::string& conflict, const char* what) {
    if (buffer.rows == 0) return Ok{};
    std::string sql = insert + " SELECT * FROM unnest(";
    PgParams params;
    std::vector<std::string> arrays;
    arrays.reserve(buffer.columns.size());
    for (std::size_t i = 0; i < buffer.columns.size(); ++i) {
      arrays.push_back(buffer.columns[i].take());
      sql += (i == 0 ? "$" : ", $") + std::to_string(i + 1) + "::" + types[i];
    }
    for (const std::string& array : arrays) params.emplace_back(array);
    sql += ")" + conflict;
    const std::size_t rows = buffer.rows;
    buffer.clear();
    auto written = connection->exec(sql, params);
    if (!written) return fail(written.error());
    if (written.value().affected_rows() != static_cast<std::int64_t>(rows)) {
      return fail(corrupt(std::string(what) + ": " + std::to_string(rows) + " rows sent, " +
                          std::to_string(written.value().affected_rows()) +
                          " written (a row would move back to an older version)"));
    }
    return Ok{};
  }

  Status<StoreError> flush() {
    if (buffered() == 0) return Ok{};
    static const char* wallet_types[] = {"text[]",   "text[]",   "bigint[]",
                                         "bigint[]", "bigint[]", "bigint[]"};
    static const char* ledger_wallet_types[] = {"text[]",   "bigint[]", "bigint[]", "bigint[]",
                                                "bigint[]", "bigint[]", "bigint[]"};
    static const char* entry_types[] = {"bigint[]", "text[]",   "bigint[]", "text[]", "bigint[]",
                                        "bigint[]", "bigint[]", "text[]",   "text[]", "text[]",
                                        "text[]",   "bigint[]", "bigint[]"};
    static const char* event_wallet_types[] = {"text[]", "bigint[]", "bigint[]", "bigint[]"};
    static const char* wallet_event_types[] = {"bigint[]", "text[]",   "bigint[]",
                                               "text[]",   "text[]",   "text[]",
                                               "bigint[]", "bigint[]", "bigint[]"};
    const std::string rw = table("read_wallets");
    const std::string lw = table("ledger_wallets");
    const std::string ew = table("event_wallets");
    // The state rows never move backwards: an update must raise the version.
    if (auto s =
            flush_one(read_wallets, "INSERT INTO " + rw + " (" + kWalletColumns + ")", wallet_types,
                      " ON CONFLICT (id) DO UPDATE SET balance_minor = excluded.balance_minor,"
                      " version = excluded.version, updated_at_ms = excluded.updated_at_ms"
                      " WHERE " +
                          rw + ".version < excluded.version",
                      "writing the read model");
        !s) {
      return s;
    }
    if (auto s = flush_one(ledger_wallets, "INSERT INTO " + lw + " (" + kLedgerWalletColumns + ")",
                           ledger_wallet_types,
                           " ON CONFLICT (wallet_id) DO UPDATE SET version = excluded.version,"
                           " balance_minor = excluded.balance_minor,"
                           " credits_minor = excluded.credits_minor,"
                           " debits_minor = excluded.debits_minor,"
                           " entry_count = excluded.entry_count"
                           " WHERE " +
                               lw + ".version < excluded.version",
                           "writing ledger totals");
        !s) {
      return s;
    }
    if (auto s = flush_one(entries,
                           "INSERT INTO " + table("ledger_entries") + " (" + kEntryColumns + ")",
                           entry_types, "", "writing ledger entries");
        !s) {
      return s;
    }
    if (auto s = flush_one(event_wallets, "INSERT INTO " + ew + " (" + kEventWalletColumns + ")",
                           event_wallet_types,
                           " ON CONFLICT (wallet_id) DO UPDATE SET version = excluded.version,"
                           " balance_minor = excluded.balance_minor"
                           " WHERE " +
                               ew + ".version < excluded.version",
                           "writing the event copy's state");
        !s) {
      return s;
    }
    return flush_one(wallet_events,
                     "INSERT INTO " + table("wallet_events") + " (" + kWalletEventColumns + ")",
                     wallet_event_types, "", "writing wallet events");
  }

  // Before a read inside a write (the projector reads back what it may have buffered), and
  // when the buffers are full.
  Status<StoreError> flush_if(bool force) {
    if (!in_transaction) return Ok{};
    if (force || buffered() >= kBufferedRowsMax) return flush();
    return Ok{};
  }

  // A state row for `id`: a second row for the same id in one buffer is flushed first.
  Status<StoreError> before_state_row(Buffer& buffer, const std::string& id) {
    if (buffer.ids.count(id) != 0) {
      if (auto s = flush(); !s) return s;
    }
    buffer.ids.insert(id);
    return Ok{};
  }
};

PgReadStore::PgReadStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgReadStore::~PgReadStore() {
  if (impl_->connection && impl_->connection->alive() && impl_->holds_rebuild_lock) {
    (void)impl_->connection->exec("SELECT pg_advisory_unlock(" + std::to_string(kRebuildLockKey) +
                                  ")");
  }
}

Result<std::unique_ptr<PgReadStore>, StoreError> PgReadStore::open(const std::string& url) {
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  if (auto c = impl->connect(); !c) return fail(c.error());
  return std::unique_ptr<PgReadStore>(new PgReadStore(std::move(impl)));
}

Status<StoreError> PgReadStore::begin_write() {
  if (auto c = impl_->connect(); !c) return c;
  impl_->clear_buffers();
  // See the header: projection transactions of all instances (and a rebuild's swap) run one at
  // a time, and the checkpoints read next are the latest committed ones.
  auto begun = impl_->connection->exec(
      "BEGIN; LOCK TABLE projection_checkpoints IN SHARE ROW EXCLUSIVE MODE");
  if (!begun) {
    (void)impl_->connection->exec("ROLLBACK");
    return fail(begun.error());
  }
  impl_->in_transaction = true;
  return Ok{};
}

Status<StoreError> PgReadStore::commit() {
  if (auto s = impl_->flush(); !s) return s;
  auto done = impl_->connection->exec("COMMIT");
  if (!done) return fail(done.error());
  impl_->in_transaction = false;
  return Ok{};
}

void PgReadStore::rollback() {
  impl_->clear_buffers();
  if (impl_->connection && impl_->connection->alive()) (void)impl_->connection->exec("ROLLBACK");
  impl_->in_transaction = false;
}

Status<StoreError> PgReadStore::flush_writes() { return impl_->flush(); }

Status<StoreError> PgReadStore::begin_read() {
  if (auto c = impl_->connect(); !c) return c;
  // The snapshot is taken by the first statement after BEGIN: take it now.
  auto begun = impl_->connection->exec(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT count(*) FROM"
      " projection_checkpoints");
  if (!begun) {
    (void)impl_->connection->exec("ROLLBACK");
    return fail(begun.error());
  }
  impl_->in_transaction = true;
  return Ok{};
}

void PgReadStore::end_read() {
  if (impl_->connection && impl_->connection->alive()) (void)impl_->connection->exec("COMMIT");
  impl_->in_transaction = false;
}

Result<std::vector<Checkpoint>, StoreError> PgReadStore::checkpoints() {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  return rows_of<Checkpoint>(
      impl_->exec("SELECT projector, position, updated_at_ms FROM projection_checkpoints"),
      [](const PgResult& r, int row) -> Result<Checkpoint, StoreError> {
        const std::optional<ProjectorId> id = projector_from_name(r.text(row, 0));
        if (!id) {
          return fail(corrupt("unknown projector " + std::string(r.text(row, 0)) +
                              " in projection_checkpoints"));
        }
        return Checkpoint{*id, r.int64(row, 1), r.int64(row, 2)};
      });
}

Status<StoreError> PgReadStore::set_checkpoint(const Checkpoint& checkpoint) {
  if (auto s = impl_->flush_if(true); !s) return s;
  const std::string position = std::to_string(checkpoint.position);
  const std::string updated = std::to_string(checkpoint.updated_at_ms);
  auto done = impl_->exec(
      "INSERT INTO projection_checkpoints (projector, position, updated_at_ms)"
      " VALUES ($1, $2::bigint, $3::bigint) ON CONFLICT (projector) DO UPDATE SET"
      " position = excluded.position, updated_at_ms = excluded.updated_at_ms",
      PgParams{projector_name(checkpoint.projector), position, updated});
  if (!done) return fail(done.error());
  return Ok{};
}

// ---------------------------------------------------------------------------------- read model

Result<std::optional<WalletState>, StoreError> PgReadStore::read_wallet(std::string_view id) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  return first_of(
      rows_of<WalletState>(impl_->exec(std::string("SELECT ") + kWalletColumns + " FROM " +
                                           impl_->table("read_wallets") + " WHERE id = $1",
                                       PgParams{id}),
                           wallet_at));
}

Status<StoreError> PgReadStore::put_read_wallet(const WalletState& wallet) {
  Buffer& b = impl_->read_wallets;
  if (auto s = impl_->before_state_row(b, wallet.id); !s) return s;
  b.columns[0].add(text(wallet.id));
  b.columns[1].add(text(wallet.owner_id));
  b.columns[2].add(wallet.balance.minor());
  b.columns[3].add(wallet.version);
  b.columns[4].add(wallet.created_at_ms);
  b.columns[5].add(wallet.updated_at_ms);
  ++b.rows;
  return impl_->flush_if(false);
}

Result<std::vector<WalletState>, StoreError> PgReadStore::list_read_wallets(
    std::string_view after_id, const std::optional<std::string>& owner_id, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string count = std::to_string(limit);
  std::string sql = std::string("SELECT ") + kWalletColumns + " FROM " +
                    impl_->table("read_wallets") + " WHERE id > $1";
  PgParams params{after_id, count};
  if (owner_id) {
    sql += " AND owner_id = $3";
    params.emplace_back(std::string_view(*owner_id));
  }
  sql += " ORDER BY id LIMIT $2::bigint";
  return rows_of<WalletState>(impl_->exec(sql, params), wallet_at);
}

// ---------------------------------------------------------------------------------- ledger

Result<std::optional<LedgerWallet>, StoreError> PgReadStore::ledger_wallet(std::string_view id) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  return first_of(rows_of<LedgerWallet>(
      impl_->exec(std::string("SELECT ") + kLedgerWalletColumns + " FROM " +
                      impl_->table("ledger_wallets") + " WHERE wallet_id = $1",
                  PgParams{id}),
      ledger_wallet_at));
}

Status<StoreError> PgReadStore::put_ledger_wallet(const LedgerWallet& wallet) {
  Buffer& b = impl_->ledger_wallets;
  if (auto s = impl_->before_state_row(b, wallet.wallet_id); !s) return s;
  b.columns[0].add(text(wallet.wallet_id));
  b.columns[1].add(wallet.version);
  b.columns[2].add(wallet.balance.minor());
  b.columns[3].add(wallet.credits_minor);
  b.columns[4].add(wallet.debits_minor);
  b.columns[5].add(wallet.entry_count);
  b.columns[6].add(wallet.wallet_key);
  ++b.rows;
  return impl_->flush_if(false);
}

Result<std::vector<LedgerWallet>, StoreError> PgReadStore::scan_ledger_wallets(
    std::string_view after_id, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string count = std::to_string(limit);
  return rows_of<LedgerWallet>(
      impl_->exec(std::string("SELECT ") + kLedgerWalletColumns + " FROM " +
                      impl_->table("ledger_wallets") +
                      " WHERE wallet_id > $1 ORDER BY wallet_id LIMIT $2::bigint",
                  PgParams{after_id, count}),
      ledger_wallet_at);
}

Status<StoreError> PgReadStore::insert_entry(const LedgerEntry& entry) {
  Buffer& b = impl_->entries;
  b.columns[0].add(entry.position);
  b.columns[1].add(text(entry.wallet_id));
  b.columns[2].add(entry.version);
  b.columns[3].add(text(entry_type_name(entry.type)));
  b.columns[4].add(entry.amount.minor());
  b.columns[5].add(entry.balance_before.minor());
  b.columns[6].add(entry.balance_after.minor());
  b.columns[7].add(text(entry.description));
  b.columns[8].add(text(entry.reference_id));
  b.columns[9].add(text(entry.related_wallet_id));
  b.columns[10].add(text(entry.metadata));
  b.columns[11].add(entry.created_at_ms);
  b.columns[12].add(entry.wallet_key);
  ++b.rows;
  return impl_->flush_if(false);
}

Result<std::vector<LedgerEntry>, StoreError> PgReadStore::find_entries(const EntryFilter& filter) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string start = std::to_string(filter.start_ms.value_or(INT64_MIN));
  const std::string end = std::to_string(filter.end_ms.value_or(INT64_MAX));
  const std::string limit = std::to_string(filter.limit);
  const std::string offset = std::to_string(filter.offset);
  PgParams params{start, end, limit, offset};
  std::string sql = std::string("SELECT ") + kEntryColumns + " FROM " +
                    impl_->table("ledger_entries") +
                    " WHERE created_at_ms BETWEEN $1::bigint AND $2::bigint";
  if (filter.wallet_id) {
    params.emplace_back(std::string_view(*filter.wallet_id));
    sql += " AND wallet_id = $" + std::to_string(params.size());
  }
  if (filter.type) {
    params.emplace_back(entry_type_name(*filter.type));
    sql += " AND type = $" + std::to_string(params.size());
  }
  sql += " ORDER BY created_at_ms DESC, position DESC LIMIT $3::bigint OFFSET $4::bigint";
  return rows_of<LedgerEntry>(impl_->exec(sql, params), entry_at);
}

Result<std::vector<LedgerEntry>, StoreError> PgReadStore::entries_by_reference(
    std::string_view reference_id, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string count = std::to_string(limit);
  return rows_of<LedgerEntry>(
      impl_->exec(std::string("SELECT ") + kEntryColumns + " FROM " +
                      impl_->table("ledger_entries") +
                      " WHERE reference_id = $1"
                      " ORDER BY created_at_ms DESC, position DESC LIMIT $2::bigint",
                  PgParams{reference_id, count}),
      entry_at);
}

Result<std::vector<LedgerEntry>, StoreError> PgReadStore::scan_entries(std::int64_t after_position,
                                                                       std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string after = std::to_string(after_position);
  const std::string count = std::to_string(limit);
  return rows_of<LedgerEntry>(
      impl_->exec(std::string("SELECT ") + kEntryColumns + " FROM " +
                      impl_->table("ledger_entries") +
                      " WHERE position > $1::bigint ORDER BY position LIMIT $2::bigint",
                  PgParams{after, count}),
      entry_at);
}

// ---------------------------------------------------------------------------------- wallet events

Result<std::optional<EventWallet>, StoreError> PgReadStore::event_wallet(std::string_view id) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  return first_of(
      rows_of<EventWallet>(impl_->exec(std::string("SELECT ") + kEventWalletColumns + " FROM " +
                                           impl_->table("event_wallets") + " WHERE wallet_id = $1",
                                       PgParams{id}),
                           event_wallet_row_at));
}

Status<StoreError> PgReadStore::put_event_wallet(const EventWallet& wallet) {
  Buffer& b = impl_->event_wallets;
  if (auto s = impl_->before_state_row(b, wallet.wallet_id); !s) return s;
  b.columns[0].add(text(wallet.wallet_id));
  b.columns[1].add(wallet.wallet_key);
  b.columns[2].add(wallet.version);
  b.columns[3].add(wallet.balance.minor());
  ++b.rows;
  return impl_->flush_if(false);
}

Result<std::vector<EventWallet>, StoreError> PgReadStore::scan_event_wallets(
    std::string_view after_id, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string count = std::to_string(limit);
  return rows_of<EventWallet>(
      impl_->exec(std::string("SELECT ") + kEventWalletColumns + " FROM " +
                      impl_->table("event_wallets") +
                      " WHERE wallet_id > $1 ORDER BY wallet_id LIMIT $2::bigint",
                  PgParams{after_id, count}),
      event_wallet_row_at);
}

Status<StoreError> PgReadStore::insert_wallet_event(const WalletEventRow& row) {
  Buffer& b = impl_->wallet_events;
  b.columns[0].add(row.position);
  b.columns[1].add(text(row.wallet_id));
  b.columns[2].add(row.version);
  b.columns[3].add(text(event_type_name(row.type)));
  b.columns[4].add(text(row.data));
  b.columns[5].add(text(row.metadata));
  b.columns[6].add(row.occurred_at_ms);
  b.columns[7].add(row.balance_after.minor());
  b.columns[8].add(row.wallet_key);
  ++b.rows;
  return impl_->flush_if(false);
}

Result<std::vector<WalletEventRow>, StoreError> PgReadStore::wallet_events(
    std::string_view wallet_id, std::int64_t from_version, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string from = std::to_string(from_version);
  const std::string count = std::to_string(limit);
  return rows_of<WalletEventRow>(
      impl_->exec(std::string("SELECT ") + kWalletEventColumns + " FROM " +
                      impl_->table("wallet_events") +
                      " WHERE wallet_id = $1 AND version >= $2::bigint ORDER BY version"
                      " LIMIT $3::bigint",
                  PgParams{wallet_id, from, count}),
      wallet_event_at_row);
}

Result<std::optional<WalletEventRow>, StoreError> PgReadStore::wallet_event_at(
    std::string_view wallet_id, TimestampMs at_ms) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string at = std::to_string(at_ms);
  return first_of(rows_of<WalletEventRow>(
      impl_->exec(std::string("SELECT ") + kWalletEventColumns + " FROM " +
                      impl_->table("wallet_events") +
                      " WHERE wallet_id = $1 AND occurred_at_ms <= $2::bigint"
                      " ORDER BY version DESC LIMIT 1",
                  PgParams{wallet_id, at}),
      wallet_event_at_row));
}

Result<std::vector<WalletEventRow>, StoreError> PgReadStore::scan_wallet_events(
    std::int64_t after_position, std::size_t limit) {
  if (auto s = impl_->flush_if(true); !s) return fail(s.error());
  const std::string after = std::to_string(after_position);
  const std::string count = std::to_string(limit);
  return rows_of<WalletEventRow>(
      impl_->exec(std::string("SELECT ") + kWalletEventColumns + " FROM " +
                      impl_->table("wallet_events") +
                      " WHERE position > $1::bigint ORDER BY position LIMIT $2::bigint",
                  PgParams{after, count}),
      wallet_event_at_row);
}

Result<std::vector<std::string>, StoreError> PgReadStore::index_problems(std::size_t /*limit*/) {
  // PostgreSQL maintains its indexes itself, in the same transactions as the rows; there are no
  // Wallex-maintained key rows to compare (see the header).
  return std::vector<std::string>();
}

// ---------------------------------------------------------------------------------- rebuild

Status<StoreError> PgReadStore::begin_rebuild() {
  if (auto c = impl_->connect(); !c) return c;
  if (!impl_->holds_rebuild_lock) {
    auto locked = impl_->connection->exec("SELECT pg_try_advisory_lock(" +
                                          std::to_string(kRebuildLockKey) + ")");
    if (!locked) return fail(locked.error());
    if (locked.value().text(0, 0) != "t") {
      return fail(StoreError{StoreErrorKind::kOther,
                             "another rebuild of this database's read side is running"});
    }
    impl_->holds_rebuild_lock = true;
  }
  std::string script = "BEGIN;";
  for (const TableSpec& spec : kRebuiltTables) {
    const std::string next = std::string(spec.name) + "_next";
    script += "DROP TABLE IF EXISTS " + next + ";";
    script += "CREATE UNLOGGED TABLE " + next + " (LIKE " + spec.name +
              (spec.keys_while_filling ? " INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
                                         " INCLUDING INDEXES);"
                                       : " INCLUDING DEFAULTS INCLUDING CONSTRAINTS);");
  }
  script += "COMMIT;";
  if (auto done = impl_->connection->exec(script); !done) {
    (void)impl_->connection->exec("ROLLBACK");
    return fail(done.error());
  }
  impl_->suffix = "_next";
  return Ok{};
}

Status<StoreError> PgReadStore::finish_rebuild(const std::vector<Checkpoint>& checkpoints) {
  if (impl_->suffix.empty()) {
    return fail(StoreError{StoreErrorKind::kOther, "finish_rebuild without begin_rebuild"});
  }
  // Indexes first, outside the swap's transaction (readers and the projector go on meanwhile);
  // the fresh tables become logged (their rows reach the WAL once, in bulk) before the swap.
  std::string prepare;
  for (const TableSpec& spec : kRebuiltTables) {
    const std::string next = std::string(spec.name) + "_next";
    if (spec.finish_sql[0] != '\0') prepare += replace_all(spec.finish_sql, '#', next) + ";";
    prepare += "ALTER TABLE " + next + " SET LOGGED;";
  }
  if (auto done = impl_->connection->exec(prepare); !done) return fail(done.error());

  std::string swap =
      "BEGIN; LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE; SET LOCAL lock_timeout = 0;";
  for (const TableSpec& spec : kRebuiltTables) {
    swap += std::string("DROP TABLE ") + spec.name + ";";
    swap += std::string("ALTER TABLE ") + spec.name + "_next RENAME TO " + spec.name + ";";
  }
  swap += "DELETE FROM projection_checkpoints;";
  for (const Checkpoint& c : checkpoints) {
    swap += "INSERT INTO projection_checkpoints (projector, position, updated_at_ms) VALUES ('" +
            std::string(projector_name(c.projector)) + "', " + std::to_string(c.position) + ", " +
            std::to_string(c.updated_at_ms) + ");";
  }
  swap += "COMMIT;";
  if (auto done = impl_->connection->exec(swap); !done) {
    (void)impl_->connection->exec("ROLLBACK");
    return fail(done.error());
  }
  impl_->suffix.clear();
  if (impl_->holds_rebuild_lock) {
    (void)impl_->connection->exec("SELECT pg_advisory_unlock(" + std::to_string(kRebuildLockKey) +
                                  ")");
    impl_->holds_rebuild_lock = false;
  }
  return Ok{};
}

// ---------------------------------------------------------------------------------- the log

struct PgEventLog::Impl {
  std::unique_ptr<PgConnection> connection;
};

PgEventLog::PgEventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgEventLog::~PgEventLog() = default;

Result<std::unique_ptr<PgEventLog>, StoreError> PgEventLog::open(const std::string& url) {
  auto connected = PgConnection::connect(url);
  if (!connected) return fail(connected.error());
  if (auto current = require_current_schema(*connected.value()); !current) {
    return fail(current.error());
  }
  auto impl = std::make_unique<Impl>();
  impl->connection = std::move(connected).value();
  return std::unique_ptr<PgEventLog>(new PgEventLog(std::move(impl)));
}

Result<std::vector<LoggedEvent>, StoreError> PgEventLog::read_events(std::int64_t after_position,
                                                                     std::size_t limit) {
  const std::string after = std::to_string(after_position);
  const std::string count = std::to_string(limit);
  auto rows = impl_->connection->exec(
      "SELECT position, wallet_id, version, type, data, metadata FROM events"
      " WHERE position > $1::bigint ORDER BY position LIMIT $2::bigint",
      PgParams{after, count});
  if (!rows) return fail(rows.error());
  const PgResult& r = rows.value();
  std::vector<LoggedEvent> events;
  events.reserve(static_cast<std::size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) {
    auto decoded = decode_stored_event(r.int64(row, 0), r.text(row, 1), r.int64(row, 2),
                                       r.text(row, 3), r.text(row, 4), r.text(row, 5));
    if (!decoded) return fail(corrupt(decoded.error()));
    LoggedEvent logged;
    static_cast<StoredEvent&>(logged) = std::move(decoded).value();
    logged.data_json = std::string(r.text(row, 4));
    logged.metadata_json = std::string(r.text(row, 5));
    events.push_back(std::move(logged));
  }
  return events;
}

Result<std::int64_t, StoreError> PgEventLog::last_position() {
  auto rows = impl_->connection->exec("SELECT position FROM log_head");
  if (!rows) return fail(rows.error());
  if (rows.value().rows() != 1) return fail(corrupt("log_head must hold exactly one row"));
  return rows.value().int64(0, 0);
}

Result<std::vector<WalletState>, StoreError> PgEventLog::load_wallets() {
  return rows_of<WalletState>(
      impl_->connection->exec(std::string("SELECT ") + kWalletColumns + " FROM wallets"),
      wallet_at);
}

Status<StoreError> PgEventLog::begin_snapshot() {
  auto begun = impl_->connection->exec(
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT position FROM log_head");
  if (!begun) {
    (void)impl_->connection->exec("ROLLBACK");
    return fail(begun.error());
  }
  return Ok{};
}

void PgEventLog::end_snapshot() {
  if (impl_->connection->alive()) (void)impl_->connection->exec("COMMIT");
}

}  // namespace wallex
