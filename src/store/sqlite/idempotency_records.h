// IdempotencyRecords: the idempotency records of wallex.db, laid out so that a command costs the
// same whatever its key looks like.
//
// Keyed by the client's key, a B-tree of records gets each new record on a random page once the
// keys are random (a version 4 UUID, as most clients make them): every command then dirtied a
// page of its own, which the commit wrote to the WAL and the checkpointer copied again
// (BENCHMARKS.md, "Random idempotency keys": a credit cost 60% more server CPU with random keys
// than with keys in order). So the records and the way to find them are kept apart:
//
// - idempotency_records: the records in the order they were written (id), so the commands of a
//   commit share its last pages, whatever their keys.
// - idempotency_index: (64-bit hash of the key, record id), written lazily. The records after
//   idempotency_index_state.indexed_through are held in memory (hash → id); once 65,536 of them
//   have gathered (SqliteStore::OpenOptions), they go into the index in hash order, a slice with
//   each of the following commits (twice as many entries as the commit adds records, at least
//   64), so each page of the index is written once for many keys, and evenly over time.
//
// A lookup reads the candidates of the key's hash (memory, then the index) newest first and
// compares the key itself: a hash collision costs a read, never a wrong answer. A key used again
// after its record expired gets a new record; the newest is the one that counts.
//
// Crash safety: a record is written in the commit of its command, the index and its mark in later
// commits. At open, the records after the mark are read back into memory (at most about
// twice the merge's size); the entries of a merge cut short are written again (INSERT OR IGNORE).
// Purging takes expired records from the front (lowest ids) and stops at the first that has not
// expired; their index entries go with them, in hash order (a merge skips records purged
// meanwhile). Records are stamped with the wall clock: after it was stepped back, the records
// stamped before the step hold the purge up until they expire themselves.
//
// Keys never seen: most lookups are of a new key, and each would read the index's B-tree to
// find nothing (a leaf seldom in SQLite's cache on a grown store: an eighth of the writer's time
// with transfers, BENCHMARKS.md). A Bloom filter (hash_filter.h, 16 MiB by default) of the hashes
// in the index and of the records in memory answers most of them from memory: may_exist() looks
// at nothing else once the filter is whole, and find() reads the index only when the filter says
// "maybe". A record's hash is added when its commit is done (so a rolled back append leaves
// nothing behind); a merge moves entries from memory into the index, already in the filter.
// Purged entries stay in it, so it is rebuilt when purges have removed half as many entries as
// it holds, and at open (until a rebuild has read the whole index, every lookup reads the index,
// as without a filter): a scan of the index in (key_hash, record) order, a slice with each commit
// (at least filter_chunk entries, eight per record the commit adds), into a second filter that
// the merges' entries meanwhile go into as well, and every record still in memory when the scan
// ends; the scan's place moves only when its commit does.
//
// Scale: a merge shares the index's pages among its entries while the index has fewer leaf pages
// than a merge has entries (~200 entries a page: about 13 million live keys); beyond that each
// entry lands on a page of its own again, as every record did in the table keyed by the key.
// The key hash is not keyed: keys crafted to collide make their own lookups slower, not wrong.
//
// Not thread-safe: the store's single writer uses it, lookups inside a read transaction, the rest
// inside its write transaction.
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "store/sqlite/hash_filter.h"
#include "store/sqlite/sqlite_statement.h"
#include "store/store.h"

namespace wallex {

class IdempotencyRecords {
 public:
  // The tables of a new store.
  static const char* schema();
  // Schema version 3 to 4: the records of the old idempotency_keys table (keyed by the key) move
  // into the new tables, all indexed; needs register_functions() on the connection first.
  static const char* migration_from_keys_table();
  // The SQL function wallex_key_hash(key) the migration uses.
  static int register_functions(sqlite3* db);
  // The 64-bit hash of a key (FNV-1a, then a SplitMix64 finalizer); fixed for schema version 4.
  static std::uint64_t key_hash(std::string_view key);

  struct Tuning {
    // A merge starts once `merge_records` records are not in the index, and writes twice as many
    // entries with each commit as the commit adds records, at least `merge_chunk`.
    std::size_t merge_records = 65'536;
    std::size_t merge_chunk = 64;
    // The filter of the index's hashes: 2^filter_bits_log2 bits (two filters while one is
    // rebuilt), and the fewest entries a rebuild reads with each commit.
    unsigned filter_bits_log2 = 27;
    std::size_t filter_chunk = 256;
  };
  // Prepares the statements and reads the records that are not in the index yet.
  Status<StoreError> open(sqlite3* db, const Tuning& tuning);

  // The newest record of `key`, or nullopt.
  Result<std::optional<IdempotencyRecord>, StoreError> find(std::string_view key);
  // False when find(key) would answer nullopt without reading the store: no record in memory
  // has the key's hash and the filter rules the index out.
  bool may_exist(std::string_view key) const;
  // Appends a record (in the caller's write transaction); `position` replaces record.position.
  // The record is written by merge_step(), several with one statement: `record` must live until
  // then.
  void append(const IdempotencyRecord& record, std::int64_t position);
  // Writes the records appended and not written yet, then the next chunk of a merge into the
  // index, starting one when enough records gathered, then reads the next slice of the filter's
  // rebuild, starting one when due (in the caller's write transaction, after the appends; before
  // its commit).
  Status<StoreError> merge_step();
  // The write transaction of append() and merge_step() committed, or not.
  void committed();
  void rolled_back();
  // Deletes up to `limit` records created before `created_before_ms`, from the front, and their
  // index entries (in the caller's write transaction); the number deleted.
  Result<std::int64_t, StoreError> purge(TimestampMs created_before_ms, std::size_t limit);

  // For tests and measurements: lookups that read the index, and rebuilds of the filter done.
  std::int64_t index_reads() const { return index_reads_; }
  std::int64_t filter_rebuilds() const { return filter_rebuilds_; }

 private:
  using Entry = std::pair<std::int64_t, std::int64_t>;  // (hash as stored, record id)
  // Entries in memory are kept in 4,096 buckets by the top bits of the hash: a lookup scans one
  // bucket of each set (~16 entries at 65,536), a merge takes over the whole set at once and
  // sorts one bucket at a time as it reaches it. (A hash map and one sort of the whole merge
  // stalled the writer 8-15 ms at each end of a merge.)
  static constexpr int kBucketBits = 12;
  using Buckets = std::vector<std::vector<Entry>>;
  // In the order SQLite sorts the signed values, so a merge writes the index in one ascending pass.
  static std::size_t bucket_of(std::int64_t hash) {
    const std::uint64_t ordered = static_cast<std::uint64_t>(hash) ^ (std::uint64_t{1} << 63);
    return static_cast<std::size_t>(ordered >> (64 - kBucketBits));
  }
  struct Cursor {
    std::size_t bucket = 0;
    std::size_t index = 0;
  };
  // The place of a rebuild's scan: after this (key_hash, record); the entries read so far and
  // written by merges since it began.
  struct Scan {
    std::int64_t hash = INT64_MIN;
    std::int64_t record = INT64_MIN;
    std::int64_t entries = 0;
    bool done = false;
  };
  Status<StoreError> run(SqliteStatement& s, std::string_view what);
  void add_pending(const Entry& entry);
  // False when the filter rules the hash out of the index and of the records in memory (it
  // holds all of them).
  bool index_may_hold(std::int64_t hash) const;
  Status<StoreError> index_step();
  Status<StoreError> filter_step();

  sqlite3* db_ = nullptr;
  std::size_t merge_records_ = 0;
  std::size_t merge_chunk_ = 1;
  std::size_t filter_chunk_ = 1;
  SqliteStatement insert_record_, insert_records_, select_record_, index_candidates_, insert_index_,
      insert_index_entries_, delete_index_, set_indexed_through_, purge_candidates_,
      delete_records_, scan_index_;

  // Every entry of the index and every record in memory is in filter_ once filter_whole_; while
  // a rebuild goes on (scan_), every entry the scan has passed or the merges wrote since it
  // began is in rebuilt_ (the records in memory join it when the scan ends).
  HashFilter filter_, rebuilt_;
  bool filter_whole_ = false;
  std::optional<Scan> scan_;
  // For the rebuild's trigger only (an estimate: entries written by a transaction that rolled
  // back, or written again after a restart, count too).
  std::int64_t filter_entries_ = 0;  // added to filter_ since its rebuild began
  std::int64_t filter_stale_ = 0;    // purged from the index since then
  std::int64_t index_reads_ = 0;
  std::int64_t filter_rebuilds_ = 0;

  std::int64_t next_id_ = 1;
  // Every record after the index's mark is in one of two sets: pending (since the last merge
  // began) or merging (the merge under way: entries before `merged_` are in the index).
  Buckets pending_;
  std::size_t pending_count_ = 0;
  std::int64_t pending_through_ = 0;  // the largest id in pending_
  Buckets merging_;
  std::size_t merging_count_ = 0;
  std::int64_t merging_through_ = 0;
  Cursor merged_;
  // Every record up to this id has been purged: a merge skips them, a lookup finds no row.
  std::int64_t purged_through_ = 0;
  // The open write transaction's effects, applied by committed().
  std::vector<Entry> appended_;
  // The records of appended_ not written yet, with their positions (the caller's records).
  std::vector<std::pair<const IdempotencyRecord*, std::int64_t>> unwritten_;
  std::optional<Cursor> merged_after_commit_;
  std::optional<std::int64_t> purged_through_after_commit_;
  std::optional<Scan> scanned_after_commit_;
  std::int64_t purged_entries_after_commit_ = 0;
};

}  // namespace wallex
