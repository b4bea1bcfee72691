#include "store/postgres/pg_lease.h"

#include "store/postgres/pg_connection.h"

namespace wallex {
namespace {

constexpr const char* kApplicationPrefix = "wallex ";

}  // namespace

PgLease::PgLease(std::unique_ptr<PgConnection> connection, std::int64_t key)
    : connection_(std::move(connection)), key_(key) {}

PgLease::~PgLease() {
  if (held_ && connection_->alive()) {
    (void)connection_->exec("SELECT pg_advisory_unlock(" + std::to_string(key_) + ")");
  }
}

Result<std::unique_ptr<PgLease>, StoreError> PgLease::open(const std::string& url, std::int64_t key,
                                                           const std::string& holder_name) {
  if (holder_name.empty() || holder_name.size() > kHolderNameMax) {
    return fail(StoreError{StoreErrorKind::kOther, "lease holder name must be 1-" +
                                                       std::to_string(kHolderNameMax) +
                                                       " characters: " + holder_name});
  }
  auto connected = PgConnection::connect(url);
  if (!connected) return fail(connected.error());
  auto set = connected.value()->exec("SELECT set_config('application_name', $1, false)",
                                     PgParams{kApplicationPrefix + holder_name});
  if (!set) return fail(set.error());
  return std::unique_ptr<PgLease>(new PgLease(std::move(connected).value(), key));
}

Result<bool, StoreError> PgLease::try_acquire() {
  if (held_) {
    if (check()) return true;
    return fail(StoreError{StoreErrorKind::kIo, "the lease's connection was lost"});
  }
  auto locked = connection_->exec("SELECT pg_try_advisory_lock(" + std::to_string(key_) + ")");
  if (!locked) return fail(locked.error());
  held_ = locked.value().text(0, 0) == "t";
  return held_;
}

bool PgLease::check() {
  if (!connection_->alive()) {
    held_ = false;
    return false;
  }
  auto alive = connection_->exec("SELECT 1");
  if (!alive) held_ = false;
  return held_ && alive.ok();
}

Result<std::optional<std::string>, StoreError> PgLease::holder() {
  // A bigint advisory key is stored as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
  const std::string key = std::to_string(key_);
  auto rows = connection_->exec(
      "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
      " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
      " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
      " AND l.classid::bigint = ((" +
      key +
      "::bigint >> 32) & 4294967295)"
      " AND l.objid::bigint = (" +
      key + "::bigint & 4294967295) LIMIT 1");
  if (!rows) return fail(rows.error());
  if (rows.value().rows() == 0) return std::optional<std::string>();
  std::string name(rows.value().text(0, 0));
  const std::string prefix = kApplicationPrefix;
  if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
  return std::optional<std::string>(std::move(name));
}

}  // namespace wallex
