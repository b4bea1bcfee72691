#include "store/postgres/pg_migrations.h"

#include <algorithm>

#include "store/postgres/pg_connection.h"

namespace wallex {
namespace {

// Migration 1: the write side. See docs/postgresql.md for the reasoning; in short:
//  - events: the log. position is global and gap-free (allocated from log_head inside the
//    committing transaction, see wallex_commit); UNIQUE (wallet_id, version) is the last guard
//    against a lost update; data and metadata are the JSON text of docs/event-format.md, as in
//    the SQLite store.
//  - wallets: the write model, balance in integer minor units (cents).
//  - idempotency_keys: one record per Idempotency-Key, written in the same transaction as the
//    request's events; its primary key is what makes one key execute once across instances.
//  - log_head: one row, the position of the last event. Allocating positions updates this row,
//    and its row lock is held until the transaction ends, so allocations happen one transaction
//    at a time in commit order and the committed positions are always 1..head with no gap.
//  - wallex_commit(...): one commit in one round trip (see the comments inside).
constexpr std::string_view kWriteSide = R"sql(
CREATE TABLE events (
  position       bigint PRIMARY KEY CHECK (position > 0),
  wallet_id      text   NOT NULL,
  version        bigint NOT NULL CHECK (version >= 0),
  type           text   NOT NULL,
  data           text   NOT NULL,
  metadata       text   NOT NULL,
  occurred_at_ms bigint NOT NULL,
  CONSTRAINT events_wallet_version_unique UNIQUE (wallet_id, version)
);

CREATE TABLE wallets (
  id            text   PRIMARY KEY,
  owner_id      text   NOT NULL,
  balance_minor bigint NOT NULL CHECK (balance_minor >= 0),
  version       bigint NOT NULL CHECK (version >= 0),
  created_at_ms bigint NOT NULL,
  updated_at_ms bigint NOT NULL
);

CREATE TABLE idempotency_keys (
  key           text    PRIMARY KEY,
  fingerprint   text    NOT NULL,
  status        integer NOT NULL,
  body          text    NOT NULL,
  position      bigint  NOT NULL CHECK (position >= 0),
  created_at_ms bigint  NOT NULL
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);

CREATE TABLE log_head (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  position bigint  NOT NULL CHECK (position >= 0)
);
INSERT INTO log_head (only_row, position) VALUES (true, 0);

-- One group commit. Called as a single statement outside an explicit transaction, so the
-- function and its COMMIT are one round trip and the log_head lock is held for as short a time
-- as possible. Order matters:
--   1. existing wallets: locked in id order (every transaction locks in the same order, so two
--      instances never deadlock), then updated only if still at the expected version;
--   2. new wallets: inserted in id order; one created meanwhile violates the primary key;
--   3. idempotency records: a key another transaction holds makes this one wait for it and
--      then fail with unique_violation (replacing an expired record deletes exactly the
--      record the decision saw first);
--   4. only then positions: UPDATE log_head takes the row lock that serializes allocations;
--      the events get head-n+1 .. head in batch order, and the records their final positions.
-- Any conflict raises (40001 or 23505) and the whole transaction, log_head included, rolls back.
CREATE FUNCTION wallex_commit(
    new_ids text[], new_owners text[], new_balances bigint[], new_versions bigint[],
    new_created bigint[], new_updated bigint[],
    changed_ids text[], changed_balances bigint[], changed_versions bigint[],
    changed_updated bigint[], changed_expected bigint[],
    record_keys text[], record_fingerprints text[], record_statuses integer[],
    record_bodies text[], record_offsets bigint[], record_created bigint[],
    record_replaces bigint[],
    event_wallets text[], event_versions bigint[], event_types text[], event_data text[],
    event_metadata text[], event_occurred bigint[])
  RETURNS bigint
  LANGUAGE plpgsql
AS $$
DECLARE
  changed bigint;
  head bigint;
  event_count bigint := coalesce(cardinality(event_wallets), 0);
BEGIN
  IF coalesce(cardinality(changed_ids), 0) > 0 THEN
    PERFORM 1 FROM wallets WHERE id = ANY (changed_ids) ORDER BY id FOR UPDATE;
    UPDATE wallets AS w
       SET balance_minor = c.balance, version = c.version, updated_at_ms = c.updated
      FROM unnest(changed_ids, changed_balances, changed_versions, changed_updated,
                  changed_expected) AS c(id, balance, version, updated, expected)
     WHERE w.id = c.id AND w.version = c.expected;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed <> cardinality(changed_ids) THEN
      RAISE EXCEPTION 'a wallet of the batch is no longer at the version it was decided against'
        USING ERRCODE = 'serialization_failure';
    END IF;
  END IF;

  IF coalesce(cardinality(new_ids), 0) > 0 THEN
    INSERT INTO wallets (id, owner_id, balance_minor, version, created_at_ms, updated_at_ms)
    SELECT n.id, n.owner, n.balance, n.version, n.created, n.updated
      FROM unnest(new_ids, new_owners, new_balances, new_versions, new_created, new_updated)
           AS n(id, owner, balance, version, created, updated)
     ORDER BY n.id;
  END IF;

  IF coalesce(cardinality(record_keys), 0) > 0 THEN
    DELETE FROM idempotency_keys AS k
     USING unnest(record_keys, record_replaces) AS r(key, replaces)
     WHERE r.replaces IS NOT NULL AND k.key = r.key AND k.created_at_ms = r.replaces;
    INSERT INTO idempotency_keys (key, fingerprint, status, body, position, created_at_ms)
    SELECT r.key, r.fingerprint, r.status, r.body, 0, r.created
      FROM unnest(record_keys, record_fingerprints, record_statuses, record_bodies,
                  record_created) AS r(key, fingerprint, status, body, created)
     ORDER BY r.key;
  END IF;

  IF event_count = 0 THEN
    SELECT position INTO head FROM log_head;
    RETURN head;
  END IF;
  UPDATE log_head SET position = position + event_count RETURNING position INTO head;
  INSERT INTO events (position, wallet_id, version, type, data, metadata, occurred_at_ms)
  SELECT head - event_count + e.ordinal, e.wallet_id, e.version, e.type, e.data, e.metadata,
         e.occurred
    FROM unnest(event_wallets, event_versions, event_types, event_data, event_metadata,
                event_occurred) WITH ORDINALITY
         AS e(wallet_id, version, type, data, metadata, occurred, ordinal);
  IF coalesce(cardinality(record_keys), 0) > 0 THEN
    UPDATE idempotency_keys AS k
       SET position = head - event_count + r.offset_in_batch
      FROM unnest(record_keys, record_offsets) AS r(key, offset_in_batch)
     WHERE r.offset_in_batch > 0 AND k.key = r.key;
  END IF;
  RETURN head;
END
$$;
)sql";

// Migration 2: the read side (issue 7, part 2), shared by every instance; the same rows as the
// embedded read.db (docs/event-format.md), with PostgreSQL's own indexes in place of read.db's
// key tables. Written only by the projecting instance (one at a time: a lease, and the
// SHARE ROW EXCLUSIVE lock on projection_checkpoints that every projection transaction takes),
// read by every instance. relay_published: the Kafka relay's published position (one row).
constexpr std::string_view kReadSide = R"sql(
CREATE TABLE read_wallets (
  id            text   PRIMARY KEY,
  owner_id      text   NOT NULL,
  balance_minor bigint NOT NULL CHECK (balance_minor >= 0),
  version       bigint NOT NULL CHECK (version >= 0),
  created_at_ms bigint NOT NULL,
  updated_at_ms bigint NOT NULL
);
CREATE INDEX read_wallets_by_owner ON read_wallets (owner_id, id);

CREATE TABLE ledger_wallets (
  wallet_id     text   PRIMARY KEY,
  wallet_key    bigint NOT NULL,
  version       bigint NOT NULL CHECK (version >= 0),
  balance_minor bigint NOT NULL CHECK (balance_minor >= 0),
  credits_minor bigint NOT NULL CHECK (credits_minor >= 0),
  debits_minor  bigint NOT NULL CHECK (debits_minor >= 0),
  entry_count   bigint NOT NULL CHECK (entry_count >= 0)
);

CREATE TABLE ledger_entries (
  position             bigint PRIMARY KEY CHECK (position > 0),
  wallet_id            text   NOT NULL,
  wallet_key           bigint NOT NULL,
  version              bigint NOT NULL,
  type                 text   NOT NULL
                       CHECK (type IN ('CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN')),
  amount_minor         bigint NOT NULL CHECK (amount_minor > 0),
  balance_before_minor bigint NOT NULL CHECK (balance_before_minor >= 0),
  balance_after_minor  bigint NOT NULL CHECK (balance_after_minor >= 0),
  description          text,
  reference_id         text   NOT NULL,
  related_wallet_id    text,
  metadata             text   NOT NULL,
  created_at_ms        bigint NOT NULL
);
CREATE INDEX ledger_entries_by_wallet ON ledger_entries (wallet_id, created_at_ms, position);
CREATE INDEX ledger_entries_by_time ON ledger_entries (created_at_ms, position);
CREATE INDEX ledger_entries_by_reference ON ledger_entries (reference_id);

CREATE TABLE wallet_events (
  position            bigint PRIMARY KEY CHECK (position > 0),
  wallet_id           text   NOT NULL,
  wallet_key          bigint NOT NULL,
  version             bigint NOT NULL CHECK (version >= 0),
  type                text   NOT NULL,
  data                text   NOT NULL,
  metadata            text   NOT NULL,
  occurred_at_ms      bigint NOT NULL,
  balance_after_minor bigint NOT NULL CHECK (balance_after_minor >= 0)
);
CREATE UNIQUE INDEX wallet_events_by_version ON wallet_events (wallet_id, version);

CREATE TABLE event_wallets (
  wallet_id     text   PRIMARY KEY,
  wallet_key    bigint NOT NULL,
  version       bigint NOT NULL CHECK (version >= 0),
  balance_minor bigint NOT NULL CHECK (balance_minor >= 0)
);

CREATE TABLE projection_checkpoints (
  projector     text   PRIMARY KEY,
  position      bigint NOT NULL CHECK (position >= 0),
  updated_at_ms bigint NOT NULL
);

CREATE TABLE relay_published (
  only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  position      bigint  NOT NULL CHECK (position >= 0),
  saved_at_ms   bigint  NOT NULL
);
INSERT INTO relay_published (only_row, position, saved_at_ms) VALUES (true, 0, 0);
)sql";

// Migration 3: an idempotency record may keep a snapshot or transfer reply in its compact form
// (service/reply_encoding.h), which an instance of an older wallex would answer as it is. No row
// changes; the migration's number is what makes older binaries refuse the database.
constexpr const char* kCompactReplies = R"sql(
COMMENT ON COLUMN idempotency_keys.body IS
  'The reply: JSON, or for a snapshot or transfer reply the compact form of service/reply_encoding.h';
)sql";

const std::vector<PgMigration> kMigrations = {
    {1, "write side: events, wallets, idempotency_keys, log_head, wallex_commit()", kWriteSide},
    {2, "read side: read_wallets, ledger, wallet_events, checkpoints; relay_published", kReadSide},
    {3, "idempotency replies in compact form (no data change; older wallex refuses it)",
     kCompactReplies},
    // The next migration is appended here: {4, "...", kSomething},
};

// The advisory lock every migrator takes first ('WALXMIGR').
constexpr std::string_view kMigrationLock = "SELECT pg_advisory_xact_lock(6287390496923404114)";

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS wallex_schema_migrations ("
    " version    integer     PRIMARY KEY,"
    " name       text        NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

std::string too_new_message(int newest_applied) {
  return "the database is at schema version " + std::to_string(newest_applied) +
         ", newer than this wallex knows (" + std::to_string(pg_schema_version()) +
         "): it was migrated by a newer Wallex; upgrade wallex";
}

}  // namespace

const std::vector<PgMigration>& pg_migrations() { return kMigrations; }

int pg_schema_version() { return kMigrations.back().version; }

Result<MigrationStatus, StoreError> migration_status(PgConnection& connection) {
  MigrationStatus status;
  auto exists = connection.exec("SELECT to_regclass('wallex_schema_migrations') IS NOT NULL");
  if (!exists) return fail(exists.error());
  if (exists.value().text(0, 0) == "t") {
    auto rows = connection.exec(
        "SELECT version, name, applied_at::text FROM wallex_schema_migrations ORDER BY version");
    if (!rows) return fail(rows.error());
    for (int row = 0; row < rows.value().rows(); ++row) {
      status.applied.push_back(AppliedMigration{static_cast<int>(rows.value().int64(row, 0)),
                                                std::string(rows.value().text(row, 1)),
                                                std::string(rows.value().text(row, 2))});
      status.newest_applied = std::max(status.newest_applied, status.applied.back().version);
    }
  }
  for (const PgMigration& migration : kMigrations) {
    bool applied = false;
    for (const AppliedMigration& a : status.applied) applied = applied || a.version == migration.version;
    if (!applied) status.pending.push_back(migration);
  }
  return status;
}

Result<std::vector<int>, StoreError> migrate_up(PgConnection& connection) {
  std::vector<int> applied_now;
  for (const PgMigration& migration : kMigrations) {
    const auto abandon = [&connection](StoreError error) -> Result<std::vector<int>, StoreError> {
      (void)connection.exec("ROLLBACK");
      return fail(std::move(error));
    };
    if (auto begun = connection.exec("BEGIN"); !begun) return fail(begun.error());
    if (auto locked = connection.exec(std::string(kMigrationLock)); !locked) {
      return abandon(locked.error());
    }
    if (auto created = connection.exec(std::string(kCreateMigrationsTable)); !created) {
      return abandon(created.error());
    }
    auto newest = connection.exec("SELECT coalesce(max(version), 0) FROM wallex_schema_migrations");
    if (!newest) return abandon(newest.error());
    const std::int64_t newest_applied = newest.value().int64(0, 0);
    if (newest_applied > pg_schema_version()) {
      return abandon(StoreError{StoreErrorKind::kSchemaTooNew,
                                too_new_message(static_cast<int>(newest_applied))});
    }
    if (newest_applied >= migration.version) {  // applied earlier, or by a concurrent migrator
      if (auto done = connection.exec("COMMIT"); !done) return fail(done.error());
      continue;
    }
    if (newest_applied != migration.version - 1) {
      return abandon(StoreError{StoreErrorKind::kCorrupt,
                                "wallex_schema_migrations is at version " +
                                    std::to_string(newest_applied) + " but migration " +
                                    std::to_string(migration.version) + " is next"});
    }
    if (auto ran = connection.exec(std::string(migration.sql)); !ran) {
      StoreError error = ran.error();
      error.message = "migration " + std::to_string(migration.version) + " (" +
                      std::string(migration.name) + ") failed: " + error.message;
      return abandon(std::move(error));
    }
    const std::string version = std::to_string(migration.version);
    auto recorded = connection.exec(
        "INSERT INTO wallex_schema_migrations (version, name) VALUES ($1, $2)",
        PgParams{version, migration.name});
    if (!recorded) return abandon(recorded.error());
    if (auto done = connection.exec("COMMIT"); !done) return fail(done.error());
    applied_now.push_back(migration.version);
  }
  return applied_now;
}

Status<StoreError> require_current_schema(PgConnection& connection) {
  auto status = migration_status(connection);
  if (!status) return fail(status.error());
  if (status.value().too_new()) {
    return fail(StoreError{StoreErrorKind::kSchemaTooNew,
                           too_new_message(status.value().newest_applied)});
  }
  if (!status.value().pending.empty()) {
    std::string versions;
    for (const PgMigration& m : status.value().pending) {
      versions += (versions.empty() ? "" : ", ") + std::to_string(m.version);
    }
    return fail(StoreError{StoreErrorKind::kOther,
                           "the database " + connection.display_url() +
                               " has pending schema migrations (" + versions +
                               "); run `wallex migrate up --store " + connection.display_url() +
                               "` first"});
  }
  return Ok{};
}

}  // namespace wallex
