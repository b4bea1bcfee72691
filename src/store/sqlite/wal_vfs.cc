#include "store/sqlite/wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace wallex {
namespace {

// The WAL format (https://www.sqlite.org/fileformat2.html#walformat): after a 32-byte file
// header, frames of a 24-byte header and a page; bytes 4-7 of a frame header (big-endian) are
// the database size in pages after a commit for the commit's last frame, zero for the others.
constexpr int kFrameHeaderBytes = 24;

sqlite3_vfs* base = nullptr;  // the default VFS found at install
sqlite3_vfs vfs{};
bool installed = false;

// A WAL file: the default VFS's object follows this struct in the same allocation.
struct WalFile {
  sqlite3_file file;  // file.pMethods = &kWalMethods
  sqlite3_file* real;
  bool buffering;  // false: every call goes straight to `real`
  char* pending;   // kPendingBytesMax bytes, allocated at the first write
  std::size_t pending_bytes;
  sqlite3_int64 pending_offset;      // where pending[0] goes in the file
  sqlite3_int64 high_water;          // the end of the furthest write since the WAL's header
  sqlite3_int64 commit_page_offset;  // the page of the commit frame just begun goes here; -1: none
};

constexpr std::size_t real_offset() {
  return (sizeof(WalFile) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
         alignof(std::max_align_t);
}

WalFile* wal(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }

// The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the length to 17 bits and
// reports the rest as a full disk), so the pending bytes go out in pieces no larger than this.
constexpr std::size_t kWriteBytesMax = 64 * 1024;

// Writes what is pending. On a failure the bytes are dropped: the caller returns the error to
// SQLite, which then rolls the whole transaction back (below), so they belong to nothing.
int flush(WalFile* f) {
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < f->pending_bytes && rc == SQLITE_OK;) {
    const std::size_t piece = std::min(kWriteBytesMax, f->pending_bytes - done);
    rc = f->real->pMethods->xWrite(f->real, f->pending + done, static_cast<int>(piece),
                                   f->pending_offset + static_cast<sqlite3_int64>(done));
    done += piece;
  }
  f->pending_bytes = 0;
  return rc;
}

// Before any call on the file but a write. A failure is reported as an I/O error whatever it
// was: SQLite rolls the whole transaction back on an I/O error, while a full disk reported by a
// read would make it undo only the statement and later commit the rest without the lost frames.
// (A write's own failure needs no such care: SQLite fails the transaction on any of them.)
int flush_before_call(WalFile* f) {
  const int rc = flush(f);
  return rc == SQLITE_OK ? SQLITE_OK : SQLITE_IOERR_WRITE;
}

bool is_commit_frame_header(const void* data, int amount) {
  if (amount != kFrameHeaderBytes) return false;
  const auto* bytes = static_cast<const unsigned char*>(data);
  return (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
}

int wal_close(sqlite3_file* file) {
  WalFile* f = wal(file);
  (void)flush(f);  // a commit flushed already; nothing pending here is committed
  std::free(f->pending);
  f->pending = nullptr;
  return f->real->pMethods->xClose(f->real);
}

int wal_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xRead(f->real, data, amount, offset);
}

// Only writes beyond everything written so far (since the WAL's header was last written at
// offset 0) are buffered: SQLite appending frames. A write below that mark — SQLite rewriting a
// frame header after recomputing checksums, or overwriting frames of a transaction it rolled
// back — goes to the file at once, after what is pending.
int wal_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  if (!f->buffering) return f->real->pMethods->xWrite(f->real, data, amount, offset);
  const auto size = static_cast<std::size_t>(amount);
  const sqlite3_int64 end = offset + amount;
  if (offset == 0) f->high_water = 0;  // the WAL's header: the file starts over
  // Whatever path this write takes: is it the page of a commit frame, or a commit frame header?
  const bool completes_commit = f->commit_page_offset >= 0 && offset == f->commit_page_offset;
  f->commit_page_offset = is_commit_frame_header(data, amount) ? end : -1;

  const bool appends =
      f->pending_bytes > 0
          ? offset == f->pending_offset + static_cast<sqlite3_int64>(f->pending_bytes)
          : offset >= f->high_water;
  if (!appends || f->pending_bytes + size > kPendingBytesMax) {
    if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  }
  if (appends && f->pending == nullptr) {
    f->pending = static_cast<char*>(std::malloc(kPendingBytesMax));
  }
  if (appends && f->pending != nullptr && size <= kPendingBytesMax) {
    if (f->pending_bytes == 0) f->pending_offset = offset;
    std::memcpy(f->pending + f->pending_bytes, data, size);
    f->pending_bytes += size;
  } else if (const int rc = f->real->pMethods->xWrite(f->real, data, amount, offset);
             rc != SQLITE_OK) {
    return rc;
  }
  f->high_water = std::max(f->high_water, end);
  return completes_commit ? flush(f) : SQLITE_OK;
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  f->high_water = std::min(f->high_water, size);
  return f->real->pMethods->xTruncate(f->real, size);
}

int wal_sync(sqlite3_file* file, int flags) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xSync(f->real, flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileSize(f->real, size);
}

int wal_lock(sqlite3_file* file, int level) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xLock(f->real, level);
}

int wal_unlock(sqlite3_file* file, int level) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xUnlock(f->real, level);
}

int wal_check_reserved_lock(sqlite3_file* file, int* out) {
  WalFile* f = wal(file);
  return f->real->pMethods->xCheckReservedLock(f->real, out);
}

int wal_file_control(sqlite3_file* file, int op, void* arg) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}

int wal_sector_size(sqlite3_file* file) {
  WalFile* f = wal(file);
  return f->real->pMethods->xSectorSize(f->real);
}

int wal_device_characteristics(sqlite3_file* file) {
  WalFile* f = wal(file);
  return f->real->pMethods->xDeviceCharacteristics(f->real);
}

// SQLite uses shared memory and memory mapping on database files only; a WAL file passes the
// calls on, or declines them when the default VFS's object has no such method.
int wal_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  WalFile* f = wal(file);
  if (f->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return f->real->pMethods->xShmMap(f->real, region, size, extend, out);
}

int wal_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
  WalFile* f = wal(file);
  if (f->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

void wal_shm_barrier(sqlite3_file* file) {
  WalFile* f = wal(file);
  if (f->real->pMethods->iVersion >= 2) f->real->pMethods->xShmBarrier(f->real);
}

int wal_shm_unmap(sqlite3_file* file, int delete_flag) {
  WalFile* f = wal(file);
  if (f->real->pMethods->iVersion < 2) return SQLITE_OK;
  return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

int wal_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  WalFile* f = wal(file);
  *out = nullptr;
  if (f->real->pMethods->iVersion < 3) return SQLITE_OK;
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFetch(f->real, offset, amount, out);
}

int wal_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  WalFile* f = wal(file);
  if (f->real->pMethods->iVersion < 3) return SQLITE_OK;
  return f->real->pMethods->xUnfetch(f->real, offset, page);
}

const sqlite3_io_methods kWalMethods = {
    3,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    wal_shm_map,
    wal_shm_lock,
    wal_shm_barrier,
    wal_shm_unmap,
    wal_fetch,
    wal_unfetch,
};

int open_file(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_WAL) == 0) return base->xOpen(base, name, file, flags, out_flags);
  WalFile* f = wal(file);
  f->file.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + real_offset());
  f->buffering = false;
  f->pending = nullptr;
  f->pending_bytes = 0;
  f->pending_offset = 0;
  f->high_water = 0;
  f->commit_page_offset = -1;
  const int rc = base->xOpen(base, name, f->real, flags, out_flags);
  // SQLite calls xClose on a file whose open failed only when pMethods is set: follow the real
  // object's state.
  if (f->real->pMethods == nullptr) return rc;
  f->file.pMethods = &kWalMethods;
  // Without "powersafe overwrite" (a device setting, on by default) SQLite pads a synchronous
  // commit to a sector boundary and may split the commit frame's page into two writes around a
  // sync, which the commit detection above does not follow: such a WAL is not buffered. SQLite
  // decides it when it opens the WAL, from the database file's characteristics, as here.
  sqlite3_file* database = sqlite3_database_file_object(name);
  f->buffering = rc == SQLITE_OK && database != nullptr && database->pMethods != nullptr &&
                 (database->pMethods->xDeviceCharacteristics(database) &
                  SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
  return rc;
}

// Everything else is the default VFS's, called with its own object.
int delete_file(sqlite3_vfs*, const char* name, int sync_dir) {
  return base->xDelete(base, name, sync_dir);
}
int access_file(sqlite3_vfs*, const char* name, int flags, int* out) {
  return base->xAccess(base, name, flags, out);
}
int full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return base->xFullPathname(base, name, size, out);
}
void* dl_open(sqlite3_vfs*, const char* name) { return base->xDlOpen(base, name); }
void dl_error(sqlite3_vfs*, int size, char* out) { base->xDlError(base, size, out); }
void (*dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return base->xDlSym(base, handle, symbol);
}
void dl_close(sqlite3_vfs*, void* handle) { base->xDlClose(base, handle); }
int randomness(sqlite3_vfs*, int size, char* out) { return base->xRandomness(base, size, out); }
int sleep_for(sqlite3_vfs*, int microseconds) { return base->xSleep(base, microseconds); }
int current_time(sqlite3_vfs*, double* out) { return base->xCurrentTime(base, out); }
int last_error(sqlite3_vfs*, int size, char* out) { return base->xGetLastError(base, size, out); }
int current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return base->xCurrentTimeInt64(base, out);
}
int set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr call) {
  return base->xSetSystemCall(base, name, call);
}
sqlite3_syscall_ptr get_system_call(sqlite3_vfs*, const char* name) {
  return base->xGetSystemCall(base, name);
}
const char* next_system_call(sqlite3_vfs*, const char* name) {
  return base->xNextSystemCall(base, name);
}

}  // namespace

bool install_wal_vfs() {
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  // Again the default if something registered another since (SQLite's own VFSs come back as the
  // default when it is shut down and initialized again).
  if (installed) return sqlite3_vfs_register(&vfs, 1) == SQLITE_OK;
  base = sqlite3_vfs_find(nullptr);
  if (base == nullptr || base->iVersion < 3) return false;
  vfs = *base;
  vfs.iVersion = 3;
  vfs.szOsFile = static_cast<int>(real_offset()) + base->szOsFile;
  vfs.pNext = nullptr;
  vfs.zName = "wallex-wal";
  vfs.pAppData = nullptr;
  vfs.xOpen = open_file;
  vfs.xDelete = delete_file;
  vfs.xAccess = access_file;
  vfs.xFullPathname = full_pathname;
  vfs.xDlOpen = dl_open;
  vfs.xDlError = dl_error;
  vfs.xDlSym = dl_sym;
  vfs.xDlClose = dl_close;
  vfs.xRandomness = randomness;
  vfs.xSleep = sleep_for;
  vfs.xCurrentTime = current_time;
  vfs.xGetLastError = last_error;
  vfs.xCurrentTimeInt64 = current_time_int64;
  vfs.xSetSystemCall = set_system_call;
  vfs.xGetSystemCall = get_system_call;
  vfs.xNextSystemCall = next_system_call;
  if (sqlite3_vfs_register(&vfs, 1) != SQLITE_OK) return false;
  installed = true;
  return true;
}

sqlite3_vfs* wal_vfs() { return installed ? &vfs : nullptr; }

}  // namespace wallex
