// Versioned schema migrations of the PostgreSQL store.
//
// The schema is an ordered list of migrations (version 1, 2, ... without gaps), each applied once
// in its own transaction and recorded in wallex_schema_migrations(version, name, applied_at).
// Concurrent migrators (several instances, or `wallex migrate up` twice) are serialized by a
// transaction-level advisory lock, so each migration runs exactly once. A database holding a
// version this binary does not know was migrated by a newer Wallex: it is refused
// (kSchemaTooNew), never written to.
//
// To change the schema, append one entry to the list in pg_migrations.cc (never edit an entry
// that has shipped: databases that applied it would not see the change).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace wallex {

class PgConnection;

struct PgMigration {
  int version = 0;
  std::string_view name;
  std::string_view sql;
};

// Every migration this binary knows, in version order.
const std::vector<PgMigration>& pg_migrations();
// The version the binary's code expects: the last entry of pg_migrations().
int pg_schema_version();

struct AppliedMigration {
  int version = 0;
  std::string name;
  std::string applied_at;  // as PostgreSQL prints a timestamptz
};

struct MigrationStatus {
  std::vector<AppliedMigration> applied;  // in version order, possibly with unknown (newer) ones
  std::vector<PgMigration> pending;       // known, not applied yet, in version order
  int newest_applied = 0;                 // 0 for a database Wallex never migrated
  bool too_new() const { return newest_applied > pg_schema_version(); }
};

// Reads what is applied (read only; an empty database has nothing applied).
Result<MigrationStatus, StoreError> migration_status(PgConnection& connection);

// Applies every pending migration, each in its own transaction under the advisory lock; returns
// the versions it applied (empty when the database was up to date). kSchemaTooNew when the
// database is newer than this binary.
Result<std::vector<int>, StoreError> migrate_up(PgConnection& connection);

// Ok when the database is exactly at pg_schema_version(); kSchemaTooNew when newer; kOther
// naming `wallex migrate up` when migrations are pending.
Status<StoreError> require_current_schema(PgConnection& connection);

}  // namespace wallex
