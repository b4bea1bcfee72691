#include "store/sqlite/page_cache.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

namespace wallex {
namespace {

// pcache1 (or whatever cache SQLite had when the wrapper was installed).
sqlite3_pcache_methods2 base_methods{};
bool installed = false;

// Page numbers up to this are tracked (a 32 MiB bitmap at most: 1 TiB of 4 KiB pages). A cache
// that ever holds a larger number leaves its truncates to pcache1.
constexpr unsigned kTrackedKeysMax = 1u << 28;

// A truncate that would look up more marked pages than this (a reset of the whole cache) is
// cheaper as pcache1's own walk.
constexpr std::size_t kLookupsMax = 64;

struct Cache {
  sqlite3_pcache* base;
  std::vector<std::uint64_t> marked;  // bit k: pcache1 may hold page k
  // Words at and beyond this are all zero. The bitmap grows to cover the pending byte page
  // (262,145) as soon as SQLite parks a page there, so scanning and clearing up to
  // marked.size() at every commit's truncate would touch 4,000 words and more each time.
  std::size_t used_words = 0;
  bool untracked = false;  // held a page number beyond kTrackedKeysMax

  void mark(unsigned key) {
    if (key >= kTrackedKeysMax) {
      untracked = true;
      return;
    }
    const std::size_t word = key / 64;
    if (word >= marked.size()) {
      try {
        marked.resize(std::max(word + 1, marked.size() * 2), 0);
      } catch (const std::bad_alloc&) {
        untracked = true;
        return;
      }
    }
    marked[word] |= std::uint64_t{1} << (key % 64);
    used_words = std::max(used_words, word + 1);
  }

  void unmark(unsigned key) {
    const std::size_t word = key / 64;
    if (word < marked.size()) marked[word] &= ~(std::uint64_t{1} << (key % 64));
  }

  // The marked page numbers >= limit into `out`; false when there are more than `max`.
  bool marked_from(unsigned limit, std::size_t max, std::vector<unsigned>& out) const {
    out.clear();
    for (std::size_t word = limit / 64; word < used_words; ++word) {
      std::uint64_t bits = marked[word];
      if (word == limit / 64) bits &= ~std::uint64_t{0} << (limit % 64);
      while (bits != 0) {
        if (out.size() == max) return false;
        out.push_back(
            static_cast<unsigned>(word * 64 + static_cast<std::size_t>(__builtin_ctzll(bits))));
        bits &= bits - 1;
      }
    }
    return true;
  }

  void unmark_from(unsigned limit) {
    const std::size_t first = limit / 64;
    if (first >= used_words) return;
    marked[first] &= ~(~std::uint64_t{0} << (limit % 64));
    std::fill(marked.begin() + static_cast<std::ptrdiff_t>(first) + 1,
              marked.begin() + static_cast<std::ptrdiff_t>(used_words), 0);
    used_words = marked[first] != 0 ? first + 1 : first;
  }
};

Cache* cache_of(sqlite3_pcache* cache) { return reinterpret_cast<Cache*>(cache); }

int init(void*) { return base_methods.xInit(base_methods.pArg); }

void shutdown(void*) {
  if (base_methods.xShutdown != nullptr) base_methods.xShutdown(base_methods.pArg);
}

sqlite3_pcache* create(int page_size, int extra_size, int purgeable) {
  sqlite3_pcache* base = base_methods.xCreate(page_size, extra_size, purgeable);
  if (base == nullptr) return nullptr;
  auto* cache = new (std::nothrow) Cache{base, {}};
  if (cache == nullptr) {
    base_methods.xDestroy(base);
    return nullptr;
  }
  return reinterpret_cast<sqlite3_pcache*>(cache);
}

void cache_size(sqlite3_pcache* cache, int pages) {
  base_methods.xCachesize(cache_of(cache)->base, pages);
}

int page_count(sqlite3_pcache* cache) { return base_methods.xPagecount(cache_of(cache)->base); }

sqlite3_pcache_page* fetch(sqlite3_pcache* cache, unsigned key, int create_flag) {
  Cache* c = cache_of(cache);
  sqlite3_pcache_page* page = base_methods.xFetch(c->base, key, create_flag);
  if (page != nullptr) c->mark(key);
  return page;
}

// The page's number is not known here (sqlite3_pcache_page does not carry it), so a discarded
// page stays marked: the next truncate beyond it looks it up once and finds nothing.
void unpin(sqlite3_pcache* cache, sqlite3_pcache_page* page, int discard) {
  base_methods.xUnpin(cache_of(cache)->base, page, discard);
}

void rekey(sqlite3_pcache* cache, sqlite3_pcache_page* page, unsigned old_key, unsigned new_key) {
  Cache* c = cache_of(cache);
  base_methods.xRekey(c->base, page, old_key, new_key);
  c->unmark(old_key);
  c->mark(new_key);
}

void truncate(sqlite3_pcache* cache, unsigned limit) {
  Cache* c = cache_of(cache);
  thread_local std::vector<unsigned> keys;
  if (c->untracked || !c->marked_from(limit, kLookupsMax, keys)) {
    base_methods.xTruncate(c->base, limit);
  } else {
    // What pcache1's truncate does to each page >= limit, pinned or not: take it out and free it.
    for (const unsigned key : keys) {
      sqlite3_pcache_page* page = base_methods.xFetch(c->base, key, 0);
      if (page != nullptr) base_methods.xUnpin(c->base, page, 1);
    }
  }
  c->unmark_from(limit);
  if (limit <= 1) c->untracked = false;  // the cache is empty
}

void destroy(sqlite3_pcache* cache) {
  Cache* c = cache_of(cache);
  base_methods.xDestroy(c->base);
  delete c;
}

void shrink(sqlite3_pcache* cache) { base_methods.xShrink(cache_of(cache)->base); }

const sqlite3_pcache_methods2 wrapper_methods = {
    1,     nullptr, init,  shutdown, create,  cache_size, page_count,
    fetch, unpin,   rekey, truncate, destroy, shrink,
};

}  // namespace

bool install_page_cache() {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (installed) return true;
  sqlite3_pcache_methods2 current{};
  if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &current) != SQLITE_OK) return false;
  if (current.xFetch == nullptr || current.iVersion < 1) return false;
  base_methods = current;
  if (sqlite3_config(SQLITE_CONFIG_PCACHE2, &wrapper_methods) != SQLITE_OK) return false;
  installed = true;
  return true;
}

const sqlite3_pcache_methods2& page_cache_methods() { return wrapper_methods; }

}  // namespace wallex
