// SQLite's own page cache (pcache1), with one operation done differently: dropping the pages
// beyond the end of the database (xTruncate), which SQLite asks for at every commit.
//
// Why: when a B-tree page splits, SQLite 3.40 renumbers the new pages and parks one for a moment
// under the number of the "pending byte" page (262,145 with 4 KiB pages, the page holding byte
// 1 GiB, which never holds data). pcache1 remembers the largest number it ever held; at the
// commit's truncate, while the database is smaller than 1 GiB, the distance from the end of the
// database to 262,145 exceeds its hash table, so it walks every entry of the table: the whole
// cache, on every commit. That walk was ~18% of the writer's CPU with a 700 MB store and a
// 64 MiB cache (perf, BENCHMARKS.md).
//
// The wrapper keeps, per cache, a bitmap of the page numbers pcache1 may hold (a superset: pages
// pcache1 recycles on its own stay marked), and truncates by looking up only the marked numbers
// at or beyond the limit. Everything else goes to pcache1 unchanged, and a truncate with many
// marked pages beyond the limit (a reset of the cache) is left to pcache1 too.
//
// Thread safety: SQLite calls a cache's methods under its connection's lock, one at a time.
#pragma once

struct sqlite3_pcache_methods2;

namespace wallex {

// Installs the wrapper around SQLite's current page cache. Must run before SQLite is initialized
// (before the first connection of the process); returns false when it is too late, and the
// process then runs on pcache1 alone. Idempotent: true once installed.
bool install_page_cache();

// The wrapper's methods, for tests (valid once install_page_cache() returned true).
const sqlite3_pcache_methods2& page_cache_methods();

}  // namespace wallex
