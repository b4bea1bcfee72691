#include "store/sqlite/idempotency_records.h"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "common/check.h"
#include "store/sqlite/sqlite_error.h"

namespace wallex {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE idempotency_records (
  id            INTEGER PRIMARY KEY,
  key_hash      INTEGER NOT NULL,
  key           TEXT    NOT NULL,
  fingerprint   TEXT    NOT NULL,
  status        INTEGER NOT NULL,
  body          TEXT    NOT NULL,
  position      INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE TABLE idempotency_index (
  key_hash INTEGER NOT NULL,
  record   INTEGER NOT NULL,
  PRIMARY KEY (key_hash, record)
) WITHOUT ROWID;
CREATE TABLE idempotency_index_state (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  indexed_through INTEGER NOT NULL CHECK (indexed_through >= 0)
);
INSERT INTO idempotency_index_state (id, indexed_through) VALUES (1, 0);
)sql";

// The old table's records in the order they were made, then the index in one sorted pass.
constexpr const char* kMigration = R"sql(
INSERT INTO idempotency_records (key_hash, key, fingerprint, status, body, position, created_at_ms)
  SELECT wallex_key_hash(key), key, fingerprint, status, body, position, created_at_ms
  FROM idempotency_keys ORDER BY created_at_ms, key;
INSERT INTO idempotency_index (key_hash, record)
  SELECT key_hash, id FROM idempotency_records ORDER BY key_hash, id;
UPDATE idempotency_index_state
  SET indexed_through = (SELECT COALESCE(MAX(id), 0) FROM idempotency_records);
DROP TABLE idempotency_keys;
)sql";

// merge_step() writes the appended records kRecordsPerInsert with one statement, and a merge its
// index entries kIndexEntriesPerInsert with one statement (the rest of each one by one).
// Entries of a merge cut short by a crash are written again: OR IGNORE, row by row.
constexpr std::size_t kIndexEntriesPerInsert = 16;
constexpr std::size_t kRecordsPerInsert = 16;
// OR FAIL: no statement journal for a statement of many rows (see insert_rows).
constexpr const char* kInsertRecord =
    "INSERT OR FAIL INTO idempotency_records"
    " (id, key_hash, key, fingerprint, status, body, position, created_at_ms) VALUES ";
constexpr const char* kInsertIndex =
    "INSERT OR IGNORE INTO idempotency_index (key_hash, record) VALUES ";

}  // namespace

const char* IdempotencyRecords::schema() { return kSchema; }

const char* IdempotencyRecords::migration_from_keys_table() {
  static const std::string script = std::string(kSchema) + kMigration;
  return script.c_str();
}

int IdempotencyRecords::register_functions(sqlite3* db) {
  return create_text_hash_function(db, "wallex_key_hash", [](std::string_view key) {
    return static_cast<std::int64_t>(key_hash(key));
  });
}

std::uint64_t IdempotencyRecords::key_hash(std::string_view key) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : key) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  // FNV-1a alone leaves the last bytes in the low bits only; the finalizer spreads them.
  hash = (hash ^ (hash >> 30)) * 0xBF58476D1CE4E5B9ULL;
  hash = (hash ^ (hash >> 27)) * 0x94D049BB133111EBULL;
  return hash ^ (hash >> 31);
}

Status<StoreError> IdempotencyRecords::run(SqliteStatement& s, std::string_view what) {
  return run_statement(db_, s, what);
}

Status<StoreError> IdempotencyRecords::open(sqlite3* db, const Tuning& tuning) {
  db_ = db;
  merge_records_ = std::max<std::size_t>(tuning.merge_records, 1);
  merge_chunk_ = std::max<std::size_t>(tuning.merge_chunk, 1);
  filter_chunk_ = std::max<std::size_t>(tuning.filter_chunk, 1);
  filter_ = HashFilter(tuning.filter_bits_log2);
  rebuilt_ = HashFilter(tuning.filter_bits_log2);
  pending_.assign(std::size_t{1} << kBucketBits, {});
  merging_.assign(std::size_t{1} << kBucketBits, {});
  const std::string insert_record = std::string(kInsertRecord) + values_groups(8, 1);
  const std::string insert_records =
      std::string(kInsertRecord) + values_groups(8, kRecordsPerInsert);
  const std::string insert_one = std::string(kInsertIndex) + values_groups(2, 1);
  const std::string insert_many =
      std::string(kInsertIndex) + values_groups(2, kIndexEntriesPerInsert);
  const std::pair<SqliteStatement*, const char*> statements[] = {
      {&insert_record_, insert_record.c_str()},
      {&insert_records_, insert_records.c_str()},
      {&select_record_,
       "SELECT key, fingerprint, status, body, position, created_at_ms FROM idempotency_records"
       " WHERE id = ?1"},
      {&index_candidates_, "SELECT record FROM idempotency_index WHERE key_hash = ?1"},
      {&insert_index_, insert_one.c_str()},
      {&insert_index_entries_, insert_many.c_str()},
      {&delete_index_, "DELETE FROM idempotency_index WHERE key_hash = ?1 AND record = ?2"},
      {&set_indexed_through_,
       "UPDATE idempotency_index_state SET indexed_through = ?1 WHERE id = 1"},
      {&purge_candidates_,
       "SELECT id, key_hash, created_at_ms FROM idempotency_records ORDER BY id LIMIT ?1"},
      {&delete_records_, "DELETE FROM idempotency_records WHERE id <= ?1"},
      {&scan_index_,
       "SELECT key_hash, record FROM idempotency_index WHERE (key_hash, record) > (?1, ?2)"
       " ORDER BY key_hash, record LIMIT ?3"},
  };
  for (const auto& [statement, sql] : statements) {
    const int rc = statement->prepare(db, sql);
    if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "preparing the idempotency statements"));
  }
  SqliteStatement mark, last, unindexed;
  int rc = mark.prepare(db, "SELECT indexed_through FROM idempotency_index_state WHERE id = 1");
  if (rc == SQLITE_OK)
    rc = last.prepare(db, "SELECT COALESCE(MAX(id), 0) FROM idempotency_records");
  if (rc == SQLITE_OK) {
    rc = unindexed.prepare(db, "SELECT id, key_hash FROM idempotency_records WHERE id > ?1");
  }
  if (rc != SQLITE_OK) return fail(sqlite_error(db, rc, "reading the idempotency index's state"));
  if (rc = mark.step(); rc != SQLITE_ROW) {
    return fail(rc == SQLITE_DONE ? StoreError{StoreErrorKind::kCorrupt,
                                               "the idempotency index's state is missing"}
                                  : sqlite_error(db, rc, "reading the idempotency index's state"));
  }
  const std::int64_t indexed_through = mark.int64(0);
  if (rc = last.step(); rc != SQLITE_ROW)
    return fail(sqlite_error(db, rc, "reading the last record"));
  // An id of a purged record may come back after a restart (its index entry went with it), but
  // never one at or below the mark.
  next_id_ = std::max(last.int64(0), indexed_through) + 1;
  unindexed.bind(1, indexed_through);
  while ((rc = unindexed.step()) == SQLITE_ROW)
    add_pending({unindexed.int64(1), unindexed.int64(0)});
  if (rc != SQLITE_DONE) return fail(sqlite_error(db, rc, "reading the records to index"));
  return Ok{};
}

void IdempotencyRecords::add_pending(const Entry& entry) {
  pending_[bucket_of(entry.first)].push_back(entry);
  ++pending_count_;
  pending_through_ = std::max(pending_through_, entry.second);
  // A rebuild under way gets it when it is merged, or when the rebuild ends (committed()).
  filter_.add(static_cast<std::uint64_t>(entry.first));
  ++filter_entries_;
}

bool IdempotencyRecords::index_may_hold(std::int64_t hash) const {
  return !filter_whole_ || filter_.may_contain(static_cast<std::uint64_t>(hash));
}

bool IdempotencyRecords::may_exist(std::string_view key) const {
  // A whole filter holds the records in memory too: one cache line answers.
  return index_may_hold(static_cast<std::int64_t>(key_hash(key)));
}

Result<std::optional<IdempotencyRecord>, StoreError> IdempotencyRecords::find(
    std::string_view key) {
  const auto hash = static_cast<std::int64_t>(key_hash(key));
  std::vector<std::int64_t> ids;
  for (const Buckets* set : {&pending_, &merging_}) {
    for (const Entry& entry : (*set)[bucket_of(hash)]) {
      if (entry.first == hash) ids.push_back(entry.second);
    }
  }
  if (index_may_hold(hash)) {
    ++index_reads_;
    ResetOnExit reset(index_candidates_);
    index_candidates_.bind(1, hash);
    int rc;
    while ((rc = index_candidates_.step()) == SQLITE_ROW) ids.push_back(index_candidates_.int64(0));
    if (rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, "reading the idempotency index"));
  }
  // Newest first: a key used again after its record expired has a newer record.
  std::sort(ids.begin(), ids.end(), std::greater<>());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (const std::int64_t id : ids) {
    ResetOnExit reset(select_record_);
    select_record_.bind(1, id);
    const int rc = select_record_.step();
    if (rc == SQLITE_DONE) continue;  // purged meanwhile
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, "reading an idempotency record"));
    if (select_record_.text(0) != key) continue;  // another key with the same hash
    IdempotencyRecord record;
    record.key = std::string(select_record_.text(0));
    record.fingerprint = std::string(select_record_.text(1));
    record.status = static_cast<int>(select_record_.int64(2));
    record.body = std::string(select_record_.text(3));
    record.position = select_record_.int64(4);
    record.created_at_ms = select_record_.int64(5);
    return std::optional<IdempotencyRecord>(std::move(record));
  }
  return std::optional<IdempotencyRecord>();
}

void IdempotencyRecords::append(const IdempotencyRecord& record, std::int64_t position) {
  const std::int64_t id = next_id_ + static_cast<std::int64_t>(appended_.size());
  appended_.emplace_back(static_cast<std::int64_t>(key_hash(record.key)), id);
  unwritten_.emplace_back(&record, position);
}

Status<StoreError> IdempotencyRecords::merge_step() {
  // The appended records, the last of appended_ (which holds their hashes and ids).
  const std::size_t first = appended_.size() - unwritten_.size();
  const auto bind_record = [&](SqliteStatement& s, int parameter, std::size_t i) {
    const auto& [record, position] = unwritten_[i];
    s.bind(parameter++, appended_[first + i].second);
    s.bind(parameter++, appended_[first + i].first);
    s.bind(parameter++, record->key);
    s.bind(parameter++, record->fingerprint);
    s.bind(parameter++, static_cast<std::int64_t>(record->status));
    s.bind(parameter++, record->body);
    s.bind(parameter++, position);
    s.bind(parameter++, record->created_at_ms);
    return parameter;
  };
  if (auto st = insert_rows(db_, insert_records_, kRecordsPerInsert, insert_record_,
                            unwritten_.size(), bind_record, "recording idempotency keys");
      !st) {
    return st;
  }
  unwritten_.clear();
  if (auto st = index_step(); !st) return st;
  return filter_step();
}

Status<StoreError> IdempotencyRecords::index_step() {
  if (merging_count_ == 0) {
    if (pending_count_ < merge_records_) return Ok{};
    // Everything after the mark, committed before this transaction: the ids up to the largest.
    std::swap(merging_, pending_);
    merging_count_ = std::exchange(pending_count_, 0);
    merging_through_ = std::exchange(pending_through_, 0);
    merged_ = Cursor{};
  }
  // Twice the records this commit adds, at least merge_chunk_: the merge keeps ahead of the
  // records that gather for the next one, and its page writes spread over many commits instead
  // of a burst that the checkpointer then copies all at once (BENCHMARKS.md).
  const std::size_t chunk = std::max(merge_chunk_, 2 * appended_.size());
  Cursor at = merged_;
  std::vector<Entry> entries;
  for (std::size_t written = 0; written < chunk && at.bucket < merging_.size();) {
    std::vector<Entry>& bucket = merging_[at.bucket];
    if (at.index == 0) std::sort(bucket.begin(), bucket.end());  // hash order within the bucket
    for (; at.index < bucket.size() && written < chunk; ++at.index, ++written) {
      if (bucket[at.index].second <= purged_through_) continue;  // purged meanwhile
      entries.push_back(bucket[at.index]);
    }
    if (at.index == bucket.size()) at = Cursor{at.bucket + 1, 0};
  }
  const auto bind_entry = [&entries](SqliteStatement& s, int parameter, std::size_t i) {
    s.bind(parameter++, entries[i].first);
    s.bind(parameter++, entries[i].second);
    return parameter;
  };
  if (auto st = insert_rows(db_, insert_index_entries_, kIndexEntriesPerInsert, insert_index_,
                            entries.size(), bind_entry, "indexing idempotency keys");
      !st) {
    return st;
  }
  // In filter_ since their commit; rebuilt_ needs them when they land behind the scan's place.
  if (scan_) {
    for (const Entry& entry : entries) rebuilt_.add(static_cast<std::uint64_t>(entry.first));
    scan_->entries += static_cast<std::int64_t>(entries.size());
  }
  if (at.bucket == merging_.size()) {
    set_indexed_through_.bind(1, merging_through_);
    if (auto st = run(set_indexed_through_, "moving the idempotency index's mark"); !st) return st;
  }
  merged_after_commit_ = at;
  return Ok{};
}

Status<StoreError> IdempotencyRecords::filter_step() {
  if (!scan_) {
    // At open, or once purges have taken half of what the filter holds: stale hashes make
    // "maybe" likelier, never "no" wrong.
    const bool stale = filter_stale_ >= static_cast<std::int64_t>(merge_records_) &&
                       2 * filter_stale_ >= filter_entries_;
    if (filter_whole_ && !stale) return Ok{};
    rebuilt_.clear();
    scan_ = Scan{};
  }
  Scan at = *scan_;
  const std::size_t chunk = std::max(filter_chunk_, 8 * appended_.size());
  ResetOnExit reset(scan_index_);
  scan_index_.bind(1, at.hash);
  scan_index_.bind(2, at.record);
  scan_index_.bind(3, static_cast<std::int64_t>(chunk));
  std::size_t read = 0;
  int rc;
  while ((rc = scan_index_.step()) == SQLITE_ROW) {
    at.hash = scan_index_.int64(0);
    at.record = scan_index_.int64(1);
    rebuilt_.add(static_cast<std::uint64_t>(at.hash));
    ++read;
  }
  if (rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, "reading the idempotency index"));
  at.entries += static_cast<std::int64_t>(read);
  at.done = read < chunk;
  scanned_after_commit_ = at;
  return Ok{};
}

void IdempotencyRecords::committed() {
  WALLEX_CHECK(unwritten_.empty());  // merge_step() wrote them before the commit
  for (const Entry& entry : appended_) add_pending(entry);
  next_id_ += static_cast<std::int64_t>(appended_.size());
  appended_.clear();
  if (purged_through_after_commit_) {
    purged_through_ = std::max(purged_through_, *purged_through_after_commit_);
    purged_through_after_commit_.reset();
  }
  filter_stale_ += std::exchange(purged_entries_after_commit_, 0);
  if (scanned_after_commit_) {
    scan_ = *scanned_after_commit_;
    scanned_after_commit_.reset();
    if (scan_->done) {
      // Every entry of the index is in rebuilt_: what the scan read, and what the merges wrote
      // meanwhile. The records in memory (some of them already merged) go in now.
      std::int64_t entries = scan_->entries;
      for (const Buckets* set : {&pending_, &merging_}) {
        for (const std::vector<Entry>& bucket : *set) {
          for (const Entry& entry : bucket) rebuilt_.add(static_cast<std::uint64_t>(entry.first));
          entries += static_cast<std::int64_t>(bucket.size());
        }
      }
      std::swap(filter_, rebuilt_);
      rebuilt_.clear();
      filter_whole_ = true;
      filter_entries_ = entries;
      filter_stale_ = 0;
      scan_.reset();
      ++filter_rebuilds_;
    }
  }
  if (merged_after_commit_) {
    merged_ = *merged_after_commit_;
    merged_after_commit_.reset();
    if (merged_.bucket == merging_.size()) {  // the whole merge is in the index
      for (std::vector<Entry>& bucket : merging_) bucket.clear();
      merging_count_ = 0;
      merged_ = Cursor{};
    }
  }
}

void IdempotencyRecords::rolled_back() {
  appended_.clear();
  unwritten_.clear();
  merged_after_commit_.reset();
  purged_through_after_commit_.reset();
  // The scan reads again what this transaction read (its entries may be gone after the rollback,
  // or others that it deleted back).
  scanned_after_commit_.reset();
  purged_entries_after_commit_ = 0;
}

Result<std::int64_t, StoreError> IdempotencyRecords::purge(TimestampMs created_before_ms,
                                                           std::size_t limit) {
  std::vector<Entry> expired;
  {
    ResetOnExit reset(purge_candidates_);
    purge_candidates_.bind(1, static_cast<std::int64_t>(limit));
    int rc;
    while ((rc = purge_candidates_.step()) == SQLITE_ROW) {
      if (purge_candidates_.int64(2) >= created_before_ms) break;  // the front stops here
      expired.emplace_back(purge_candidates_.int64(1), purge_candidates_.int64(0));
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return fail(sqlite_error(db_, rc, "finding expired idempotency records"));
    }
  }
  if (expired.empty()) return std::int64_t{0};
  const std::int64_t through = expired.back().second;  // they come in id order
  std::sort(expired.begin(), expired.end());
  // Records after the mark may have entries already (a merge under way, or one cut short).
  for (const Entry& entry : expired) {
    delete_index_.bind(1, entry.first);
    delete_index_.bind(2, entry.second);
    if (auto st = run(delete_index_, "unindexing expired idempotency keys"); !st) {
      return fail(st.error());
    }
  }
  delete_records_.bind(1, through);
  if (auto st = run(delete_records_, "purging idempotency records"); !st) return fail(st.error());
  purged_through_after_commit_ = through;
  purged_entries_after_commit_ = static_cast<std::int64_t>(expired.size());
  return static_cast<std::int64_t>(expired.size());
}

}  // namespace wallex
