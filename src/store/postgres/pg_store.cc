#include "store/postgres/pg_store.h"

#include <unordered_map>

#include "store/event_codec.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_migrations.h"

namespace wallex {
namespace {

constexpr const char* kWalletColumns =
    "id, owner_id, balance_minor, version, created_at_ms, updated_at_ms";

// Prepared once per connection: name, SQL, number of parameters.
struct PreparedStatement {
  const char* name;
  std::string sql;
  int param_count;
};

const std::vector<PreparedStatement>& prepared_statements() {
  static const std::vector<PreparedStatement> statements = {
      {"wallex_commit",
       "SELECT wallex_commit($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],"
       " $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],"
       " $12::text[], $13::text[], $14::integer[], $15::text[], $16::bigint[], $17::bigint[],"
       " $18::bigint[], $19::text[], $20::bigint[], $21::text[], $22::text[], $23::text[],"
       " $24::bigint[])",
       24},
      {"read_wallets",
       std::string("SELECT ") + kWalletColumns + " FROM wallets WHERE id = ANY ($1::text[])", 1},
      {"load_wallets", std::string("SELECT ") + kWalletColumns + " FROM wallets", 0},
      {"find_idempotency",
       "SELECT key, fingerprint, status, body, position, created_at_ms FROM idempotency_keys"
       " WHERE key = ANY ($1::text[])",
       1},
      {"purge_idempotency",
       "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys"
       " WHERE created_at_ms < $1::bigint ORDER BY created_at_ms LIMIT $2::bigint)",
       2},
      {"read_events",
       "SELECT position, wallet_id, version, type, data, metadata FROM events"
       " WHERE position > $1::bigint ORDER BY position LIMIT $2::bigint",
       2},
      {"last_position", "SELECT position FROM log_head", 0},
  };
  return statements;
}

std::vector<WalletState> wallets_from(const PgResult& rows) {
  std::vector<WalletState> wallets;
  wallets.reserve(static_cast<std::size_t>(rows.rows()));
  for (int row = 0; row < rows.rows(); ++row) {
    WalletState w;
    w.id = std::string(rows.text(row, 0));
    w.owner_id = std::string(rows.text(row, 1));
    w.balance = Money::from_minor(rows.int64(row, 2));
    w.version = rows.int64(row, 3);
    w.created_at_ms = rows.int64(row, 4);
    w.updated_at_ms = rows.int64(row, 5);
    wallets.push_back(std::move(w));
  }
  return wallets;
}

std::string text_array(const std::vector<std::string>& values) {
  ArrayLiteral literal;
  for (const std::string& value : values) literal.add(std::optional<std::string_view>(value));
  return literal.take();
}

StoreError conflict(std::string message) {
  return StoreError{StoreErrorKind::kConflict, std::move(message)};
}

}  // namespace

PgStore::PgStore(std::unique_ptr<PgConnection> connection) : connection_(std::move(connection)) {}
PgStore::~PgStore() = default;

Result<std::unique_ptr<PgStore>, StoreError> PgStore::open(const std::string& url) {
  auto connected = PgConnection::connect(url);
  if (!connected) return fail(connected.error());
  std::unique_ptr<PgConnection> connection = std::move(connected).value();

  auto settings = connection->exec(
      "SELECT current_setting('fsync'), current_setting('synchronous_commit')");
  if (!settings) return fail(settings.error());
  if (settings.value().text(0, 0) != "on") {
    return fail(StoreError{StoreErrorKind::kOther,
                           "the PostgreSQL server at " + connection->display_url() +
                               " runs with fsync=" + std::string(settings.value().text(0, 0)) +
                               ": commits would not be durable; refusing to use it"});
  }
  if (settings.value().text(0, 1) == "off") {
    if (auto set = connection->exec("SET synchronous_commit = on"); !set) return fail(set.error());
  }
  // A commit may wait for the wallet rows, keys or log_head another instance's commit holds;
  // those holders are single server-side statements that always finish, so the wait is
  // contention, never a hang, and must not turn into an error through a server-wide
  // lock_timeout (contention is never a client's failure).
  if (auto set = connection->exec("SET lock_timeout = 0"); !set) return fail(set.error());
  if (auto current = require_current_schema(*connection); !current) return fail(current.error());
  for (const PreparedStatement& statement : prepared_statements()) {
    if (auto prepared = connection->prepare(statement.name, statement.sql, statement.param_count);
        !prepared) {
      return fail(prepared.error());
    }
  }
  return std::unique_ptr<PgStore>(new PgStore(std::move(connection)));
}

Result<std::vector<WalletState>, StoreError> PgStore::load_wallets() {
  auto rows = connection_->exec_prepared("load_wallets", {});
  if (!rows) return fail(rows.error());
  return wallets_from(rows.value());
}

Result<std::vector<WalletState>, StoreError> PgStore::read_wallets(
    const std::vector<std::string>& ids) {
  if (ids.empty()) return std::vector<WalletState>();
  const std::string array = text_array(ids);
  auto rows = connection_->exec_prepared("read_wallets", PgParams{array});
  if (!rows) return fail(rows.error());
  return wallets_from(rows.value());
}

Result<std::optional<IdempotencyRecord>, StoreError> PgStore::find_idempotency(
    std::string_view key) {
  auto records = find_idempotency_many({std::string(key)});
  if (!records) return fail(records.error());
  return std::move(records.value().front());
}

Result<std::vector<std::optional<IdempotencyRecord>>, StoreError> PgStore::find_idempotency_many(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<IdempotencyRecord>> records(keys.size());
  if (keys.empty()) return records;
  const std::string array = text_array(keys);
  auto rows = connection_->exec_prepared("find_idempotency", PgParams{array});
  if (!rows) return fail(rows.error());
  std::unordered_map<std::string_view, std::size_t> row_of_key;
  for (int row = 0; row < rows.value().rows(); ++row) {
    row_of_key.emplace(rows.value().text(row, 0), static_cast<std::size_t>(row));
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto found = row_of_key.find(keys[i]);
    if (found == row_of_key.end()) continue;
    const int row = static_cast<int>(found->second);
    const PgResult& r = rows.value();
    records[i] = IdempotencyRecord{keys[i], std::string(r.text(row, 1)),
                                   static_cast<int>(r.int64(row, 2)), std::string(r.text(row, 3)),
                                   r.int64(row, 4), r.int64(row, 5)};
  }
  return records;
}

Result<CommitResult, StoreError> PgStore::commit(const CommitBatch& batch) {
  // The same lost-update guard as every store: each wallet's events continue its versions from
  // the version the batch was decided against, and end at the version its write-model row gets.
  // Checked here first (nothing to send for a malformed batch); the database then checks that
  // the rows are still at those versions (wallex_commit) and UNIQUE (wallet_id, version).
  std::unordered_map<std::string_view, std::int64_t> next_version;
  next_version.reserve(batch.wallets.size());
  for (const WalletWrite& write : batch.wallets) {
    next_version.emplace(write.state.id, write.expected_version + 1);
  }

  ArrayLiteral event_wallets, event_versions, event_types, event_data, event_metadata,
      event_occurred;
  ArrayLiteral record_keys, record_fingerprints, record_statuses, record_bodies, record_offsets,
      record_created, record_replaces;
  std::vector<std::int64_t> entry_offsets;  // 1-based index of each entry's last event; 0: none
  entry_offsets.reserve(batch.entries.size());
  std::int64_t offset = 0;
  for (const CommitBatch::Entry& entry : batch.entries) {
    for (const Event& event : entry.events) {
      const auto next = next_version.find(event.wallet_id);
      if (next == next_version.end() || next->second != event.version) {
        return fail(conflict("event version " + std::to_string(event.version) +
                             " does not continue wallet " + event.wallet_id));
      }
      ++next->second;
      ++offset;
      event_wallets.add(std::optional<std::string_view>(event.wallet_id));
      event_versions.add(event.version);
      event_types.add(std::optional<std::string_view>(event_type_name(event.type)));
      const std::string data = encode_event_data(event);
      event_data.add(std::optional<std::string_view>(data));
      const std::string metadata = encode_event_metadata(event, entry.metadata);
      event_metadata.add(std::optional<std::string_view>(metadata));
      event_occurred.add(event.occurred_at_ms);
    }
    const std::int64_t entry_offset = entry.events.empty() ? 0 : offset;
    entry_offsets.push_back(entry_offset);
    if (entry.idempotency) {
      const IdempotencyRecord& record = *entry.idempotency;
      record_keys.add(std::optional<std::string_view>(record.key));
      record_fingerprints.add(std::optional<std::string_view>(record.fingerprint));
      record_statuses.add(static_cast<std::int64_t>(record.status));
      record_bodies.add(std::optional<std::string_view>(record.body));
      record_offsets.add(entry_offset);
      record_created.add(record.created_at_ms);
      if (entry.replaces_record_created_at_ms) {
        record_replaces.add(*entry.replaces_record_created_at_ms);
      } else {
        record_replaces.add(std::optional<std::string_view>());
      }
    }
  }

  ArrayLiteral new_ids, new_owners, new_balances, new_versions, new_created, new_updated;
  ArrayLiteral changed_ids, changed_balances, changed_versions, changed_updated, changed_expected;
  for (const WalletWrite& write : batch.wallets) {
    const WalletState& wallet = write.state;
    if (next_version.at(wallet.id) != wallet.version + 1) {
      return fail(conflict("write model of wallet " + wallet.id + " at version " +
                           std::to_string(wallet.version) + " does not match its events"));
    }
    if (write.expected_version < 0) {
      new_ids.add(std::optional<std::string_view>(wallet.id));
      new_owners.add(std::optional<std::string_view>(wallet.owner_id));
      new_balances.add(wallet.balance.minor());
      new_versions.add(wallet.version);
      new_created.add(wallet.created_at_ms);
      new_updated.add(wallet.updated_at_ms);
    } else {
      changed_ids.add(std::optional<std::string_view>(wallet.id));
      changed_balances.add(wallet.balance.minor());
      changed_versions.add(wallet.version);
      changed_updated.add(wallet.updated_at_ms);
      changed_expected.add(write.expected_version);
    }
  }

  // In the order of wallex_commit's parameters.
  const std::string arrays[] = {
      new_ids.take(),         new_owners.take(),         new_balances.take(),
      new_versions.take(),    new_created.take(),        new_updated.take(),
      changed_ids.take(),     changed_balances.take(),   changed_versions.take(),
      changed_updated.take(), changed_expected.take(),   record_keys.take(),
      record_fingerprints.take(), record_statuses.take(), record_bodies.take(),
      record_offsets.take(),  record_created.take(),     record_replaces.take(),
      event_wallets.take(),   event_versions.take(),     event_types.take(),
      event_data.take(),      event_metadata.take(),     event_occurred.take(),
  };
  PgParams params;
  params.reserve(std::size(arrays));
  for (const std::string& array : arrays) params.emplace_back(array);
  auto committed = connection_->exec_prepared("wallex_commit", params);
  if (!committed) return fail(committed.error());
  WALLEX_CHECK(committed.value().rows() == 1 && !committed.value().is_null(0, 0));

  const std::int64_t head = committed.value().int64(0, 0);
  const std::int64_t first = head - offset;  // the batch holds positions first+1 .. head
  WALLEX_CHECK(first >= 0);
  CommitResult result;
  result.entry_positions.reserve(entry_offsets.size());
  for (const std::int64_t entry_offset : entry_offsets) {
    result.entry_positions.push_back(entry_offset == 0 ? 0 : first + entry_offset);
  }
  result.last_position = head;
  return result;
}

Result<std::int64_t, StoreError> PgStore::purge_idempotency(TimestampMs created_before_ms,
                                                            std::size_t limit) {
  const std::string before = std::to_string(created_before_ms);
  const std::string count = std::to_string(limit);
  auto purged = connection_->exec_prepared("purge_idempotency", PgParams{before, count});
  if (!purged) return fail(purged.error());
  return purged.value().affected_rows();
}

Result<std::vector<StoredEvent>, StoreError> PgStore::read_events(std::int64_t after_position,
                                                                  std::size_t limit) {
  const std::string after = std::to_string(after_position);
  const std::string count = std::to_string(limit);
  auto rows = connection_->exec_prepared("read_events", PgParams{after, count});
  if (!rows) return fail(rows.error());
  const PgResult& r = rows.value();
  std::vector<StoredEvent> events;
  events.reserve(static_cast<std::size_t>(r.rows()));
  for (int row = 0; row < r.rows(); ++row) {
    auto decoded = decode_stored_event(r.int64(row, 0), r.text(row, 1), r.int64(row, 2),
                                       r.text(row, 3), r.text(row, 4), r.text(row, 5));
    if (!decoded) return fail(StoreError{StoreErrorKind::kCorrupt, decoded.error()});
    events.push_back(std::move(decoded).value());
  }
  return events;
}

Result<std::int64_t, StoreError> PgStore::last_position() {
  auto rows = connection_->exec_prepared("last_position", {});
  if (!rows) return fail(rows.error());
  if (rows.value().rows() != 1) {
    return fail(StoreError{StoreErrorKind::kCorrupt, "log_head must hold exactly one row"});
  }
  return rows.value().int64(0, 0);
}

}  // namespace wallex
