#include "store/sqlite/wal_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common/log.h"

namespace wallex {
namespace {

// The WAL format (https://www.sqlite.org/fileformat2.html#walformat): after a 32-byte file
// header, frames of a 24-byte header and a page; bytes 4-7 of a frame header (big-endian) are
// the database size in pages after a commit for the commit's last frame, zero for the others.
constexpr int kFrameHeaderBytes = 24;

sqlite3_vfs* base = nullptr;  // the default VFS found at install
sqlite3_vfs vfs{};
bool installed = false;

// Both kinds of wrapped file start with this: the object SQLite sees, then the default VFS's
// object, which follows the wrapper in the same allocation.
struct Wrapped {
  sqlite3_file file;
  sqlite3_file* real;
};

// Writeback in steps (wal_vfs.h): SQLite's own descriptor of the file, and the bytes written
// through this object since writeback was last started.
struct Writeback {
  int fd;  // -1: no steps (not found, turned off, or after a failure)
  std::size_t written;
  int failed_errno;  // the call failed: the object's next sync fails too (0: never)
};

std::atomic<std::uint64_t> writeback_starts{0};
int real_sync_file_range(int fd, long offset, long bytes, unsigned int flags) {
  return ::sync_file_range(fd, offset, bytes, flags);
}
std::atomic<SyncFileRange> sync_file_range_call{&real_sync_file_range};

void start_writeback_after(Writeback& w, std::size_t bytes) {
  if (w.fd < 0) return;
  w.written += bytes;
  if (w.written < kWritebackStepBytes) return;
  w.written = 0;
  // Asynchronous: returns once the kernel has queued the file's dirty pages for the device. It
  // makes nothing durable and waits for nothing; an error of the writes it starts is kept for
  // the next fsync of the file through any descriptor, as for writeback the kernel starts
  // itself. An error of the call itself is reported by this object's next sync, and ends the
  // steps for it.
  if (sync_file_range_call.load(std::memory_order_relaxed)(w.fd, 0, 0, SYNC_FILE_RANGE_WRITE) ==
      0) {
    writeback_starts.fetch_add(1, std::memory_order_relaxed);
  } else {
    w.failed_errno = errno;
    w.fd = -1;
    log::error(std::string("starting the writeback of a store file failed: ") +
               std::strerror(w.failed_errno));
  }
}

// Before a sync of an object whose writeback start failed.
int writeback_failure(const Writeback& w) {
  return w.failed_errno != 0 ? SQLITE_IOERR_FSYNC : SQLITE_OK;
}

// SQLite's descriptor of a file its unix VFS has opened, or -1. SQLite has no interface for it;
// its unixFile object (os_unix.c) begins with the methods, the VFS, the inode's lock record and
// then the descriptor, a layout SQLite has kept since 3.7. Taking SQLite's own descriptor (rather
// than opening one more) matters: closing any descriptor of a file drops every POSIX lock the
// process holds on it, SQLite's included. The value is used only when it is an open descriptor of
// the very file `name` names (same device and inode), so a different layout, or a path renamed
// meanwhile, means a file written without steps, never steps on the wrong file.
int sqlite_descriptor(const sqlite3_file* real, const char* name) {
  struct UnixFileHead {
    const sqlite3_io_methods* methods;
    sqlite3_vfs* vfs;
    void* inode;
    int fd;
  };
  if (name == nullptr || std::strncmp(base->zName, "unix", 4) != 0 ||
      static_cast<std::size_t>(base->szOsFile) < sizeof(UnixFileHead)) {
    return -1;
  }
  int fd = -1;
  std::memcpy(&fd, reinterpret_cast<const char*>(real) + offsetof(UnixFileHead, fd), sizeof fd);
  struct stat by_fd {};
  struct stat by_name {};
  if (fd < 0 || ::fstat(fd, &by_fd) != 0 || ::stat(name, &by_name) != 0) return -1;
  const bool same = by_fd.st_dev == by_name.st_dev && by_fd.st_ino == by_name.st_ino;
  return same && S_ISREG(by_fd.st_mode) ? fd : -1;
}

struct WalFile;

// A main database file: wrapped to see its connection's WAL write lock released, and for
// writeback in steps while a checkpoint copies pages into it.
struct DbFile {
  Wrapped wrapped;  // wrapped.file.pMethods = &kDbMethods
  WalFile* wal;     // the WAL this connection opened for the database, or nullptr
  int lock_level;   // SQLITE_LOCK_NONE ... SQLITE_LOCK_EXCLUSIVE, as last set
  Writeback writeback;
  bool wal_in_steps;  // false after kFileControlWalWritebackOff
  bool wal_preallocates;  // true after kFileControlWalPreallocate
};

// A WAL file.
struct WalFile {
  Wrapped wrapped;   // wrapped.file.pMethods = &kWalMethods
  DbFile* database;  // the database file of the same connection, or nullptr
  bool buffering;    // false: every call goes straight to the real file
  char* pending;     // kPendingBytesMax bytes, allocated at the first write
  std::size_t pending_bytes;
  sqlite3_int64 pending_offset;      // where pending[0] goes in the file
  sqlite3_int64 high_water;          // the end of the furthest write since the WAL's header
  sqlite3_int64 commit_page_offset;  // the page of the commit frame just begun goes here; -1: none
  bool write_lock_taken;             // the write lock was taken; no write since
  // Bytes from here on were dropped by a failed flush (-1: none), and the failure's code: the
  // transaction that wrote them must not commit (below).
  sqlite3_int64 lost_from;
  int lost_rc;
  Writeback writeback;
  // Preallocation (wal_vfs.h): on or off, and the end of the zeros last written (a write that
  // ends beyond it looks at the file's size again; after a truncate, at most the new size).
  bool preallocates;
  sqlite3_int64 prepared_end;
};

constexpr std::size_t round_up(std::size_t size) {
  return (size + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
         alignof(std::max_align_t);
}
constexpr std::size_t kRealOffset = round_up(std::max(sizeof(WalFile), sizeof(DbFile)));

WalFile* wal(sqlite3_file* file) { return reinterpret_cast<WalFile*>(file); }
DbFile* db_file(sqlite3_file* file) { return reinterpret_cast<DbFile*>(file); }
sqlite3_file* real_of(sqlite3_file* file) { return reinterpret_cast<Wrapped*>(file)->real; }

// The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the length to 17 bits and
// reports the rest as a full disk), so the pending bytes go out in pieces no larger than this.
constexpr std::size_t kWriteBytesMax = 64 * 1024;

const char kZeros[kWriteBytesMax] = {};

// Preallocation (wal_vfs.h): before a write that ends at `end`, within a step of the end of the
// zeros written so far. Every write to a WAL (its frames, its header, the dead frames flushed at
// the end of a transaction) is made under the WAL write lock, or the file's exclusive lock in
// exclusive locking mode, so the size read here is the end of everything any connection wrote,
// and the zeros land beyond it. A full disk leaves the write that needed them to its own fate
// (it may fit where the zeros did not); any other failure is that write's failure.
int extend_with_zeros(WalFile* f, sqlite3_int64 end) {
  sqlite3_file* real = f->wrapped.real;
  sqlite3_int64 size = 0;
  if (const int rc = real->pMethods->xFileSize(real, &size); rc != SQLITE_OK) return rc;
  const auto step = static_cast<sqlite3_int64>(kWalPreallocateStepBytes);
  const sqlite3_int64 target = (end + step + step - 1) / step * step;
  for (sqlite3_int64 at = size; at < target;) {
    const auto piece = static_cast<int>(std::min<sqlite3_int64>(kWriteBytesMax, target - at));
    if (const int rc = real->pMethods->xWrite(real, kZeros, piece, at); rc != SQLITE_OK) {
      if ((rc & 0xff) != SQLITE_FULL) return rc;
      f->prepared_end = end;  // the next write beyond this one tries again
      return SQLITE_OK;
    }
    start_writeback_after(f->writeback, static_cast<std::size_t>(piece));
    at += piece;
  }
  f->prepared_end = std::max(size, target);
  return SQLITE_OK;
}

// Every write to the real WAL file goes through here.
int write_wal(WalFile* f, const void* data, std::size_t amount, sqlite3_int64 offset) {
  const sqlite3_int64 end = offset + static_cast<sqlite3_int64>(amount);
  if (f->preallocates &&
      end + static_cast<sqlite3_int64>(kWalPreallocateStepBytes) > f->prepared_end) {
    if (const int rc = extend_with_zeros(f, end); rc != SQLITE_OK) return rc;
  }
  const int rc =
      f->wrapped.real->pMethods->xWrite(f->wrapped.real, data, static_cast<int>(amount), offset);
  if (rc == SQLITE_OK) start_writeback_after(f->writeback, amount);
  return rc;
}

// Writes what is pending. On a failure the bytes are dropped and the loss is remembered: until
// the connection's write transaction ends, every write, sync, truncate and size call fails with
// the same code, and every read of the lost bytes or beyond with an I/O error, so the
// transaction that wrote them cannot commit, however SQLite handled the first failure.
int flush(WalFile* f) {
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < f->pending_bytes && rc == SQLITE_OK;) {
    const std::size_t piece = std::min(kWriteBytesMax, f->pending_bytes - done);
    rc = write_wal(f, f->pending + done, piece,
                   f->pending_offset + static_cast<sqlite3_int64>(done));
    done += piece;
  }
  if (rc != SQLITE_OK && f->lost_from < 0) {
    f->lost_from = f->pending_offset;
    f->lost_rc = rc;
  }
  f->pending_bytes = 0;
  return rc;
}

// The end of the connection's write transaction (committed, rolled back or failed): what is
// still pending is dead frames past the last commit; written now, as SQLite itself would have
// written them, while no other connection can write. A failure to write them loses nothing.
void end_write_transaction(WalFile* f) {
  (void)flush(f);
  f->commit_page_offset = -1;
  f->write_lock_taken = false;
  f->lost_from = -1;
}

// Before a sync, a truncate or the size; a failure, also an earlier one, is that call's.
int flush_before_sync(WalFile* f) {
  if (f->lost_from >= 0) return f->lost_rc;
  return flush(f);
}

// Before any other call but a write or a read (locks, file controls); its failure is that call's.
int flush_before_call(WalFile* f) { return flush(f); }

// Before a read. A failure is reported as an I/O error whatever it was: SQLite rolls the whole
// transaction back on an I/O error, while a full disk reported by a read would make it undo only
// the statement. Reads below the lost bytes (committed frames, which rolling back reads again)
// go on.
int flush_before_read(WalFile* f, sqlite3_int64 offset, int amount) {
  const int rc = flush(f);
  if (rc != SQLITE_OK) return SQLITE_IOERR_WRITE;
  if (f->lost_from >= 0 && offset + amount > f->lost_from) return SQLITE_IOERR_READ;
  return SQLITE_OK;
}

// Appends are buffered only while the connection does not hold its database file's exclusive
// lock: with `PRAGMA locking_mode = EXCLUSIVE` SQLite takes no shared-memory locks, so the end
// of a write transaction would not be seen.
bool buffers(const WalFile* f) {
  return f->buffering && f->database != nullptr && f->database->lock_level < SQLITE_LOCK_EXCLUSIVE;
}

bool is_commit_frame_header(const void* data, int amount) {
  if (amount != kFrameHeaderBytes) return false;
  const auto* bytes = static_cast<const unsigned char*>(data);
  return (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
}

// Calls passed to the default VFS's object unchanged. The version-2 and -3 methods (shared
// memory, memory mapping) are declined when that object has none.
int pass_close(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xClose(real);
}
int pass_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xRead(real, data, amount, offset);
}
int pass_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xWrite(real, data, amount, offset);
}
int pass_truncate(sqlite3_file* file, sqlite3_int64 size) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xTruncate(real, size);
}
int pass_sync(sqlite3_file* file, int flags) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSync(real, flags);
}
int pass_file_size(sqlite3_file* file, sqlite3_int64* size) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileSize(real, size);
}
int pass_lock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xLock(real, level);
}
int pass_unlock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xUnlock(real, level);
}
int pass_check_reserved_lock(sqlite3_file* file, int* out) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xCheckReservedLock(real, out);
}
int pass_file_control(sqlite3_file* file, int op, void* arg) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileControl(real, op, arg);
}
int pass_sector_size(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSectorSize(real);
}
int pass_device_characteristics(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xDeviceCharacteristics(real);
}
int pass_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return real->pMethods->xShmMap(real, region, size, extend, out);
}
int pass_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return real->pMethods->xShmLock(real, offset, n, flags);
}
void pass_shm_barrier(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion >= 2) real->pMethods->xShmBarrier(real);
}
int pass_shm_unmap(sqlite3_file* file, int delete_flag) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2) return SQLITE_OK;
  return real->pMethods->xShmUnmap(real, delete_flag);
}
int pass_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  sqlite3_file* real = real_of(file);
  *out = nullptr;
  if (real->pMethods->iVersion < 3) return SQLITE_OK;
  return real->pMethods->xFetch(real, offset, amount, out);
}
int pass_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 3) return SQLITE_OK;
  return real->pMethods->xUnfetch(real, offset, page);
}

void stop_wal_writeback(WalFile* f) { f->writeback.fd = -1; }

int wal_close(sqlite3_file* file) {
  WalFile* f = wal(file);
  f->pending_bytes = 0;  // a commit flushed already: nothing pending here is committed
  std::free(f->pending);
  f->pending = nullptr;
  if (f->database != nullptr) f->database->wal = nullptr;
  return pass_close(file);
}

int wal_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_read(f, offset, amount); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xRead(f->wrapped.real, data, amount, offset);
}

// Only writes beyond everything written so far (since the WAL's header was last written at
// offset 0) are buffered: SQLite appending frames. A write below that mark — SQLite rewriting a
// frame header after recomputing checksums, or overwriting frames of a transaction it rolled
// back — goes to the file at once, after what is pending.
int wal_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* f = wal(file);
  if (f->lost_from >= 0) return f->lost_rc;
  if (!buffers(f)) {
    if (const int rc = flush(f); rc != SQLITE_OK) return rc;
    return write_wal(f, data, static_cast<std::size_t>(amount), offset);
  }
  const auto size = static_cast<std::size_t>(amount);
  const sqlite3_int64 end = offset + amount;
  if (offset == 0) f->high_water = 0;  // the WAL's header: the file starts over
  // A write transaction's first write appends after the last commit (or writes the header):
  // everything beyond it is dead, whoever wrote it, and nothing is pending.
  if (f->write_lock_taken && f->pending_bytes == 0) f->high_water = std::min(f->high_water, offset);
  f->write_lock_taken = false;
  // Whatever path this write takes: is it the page of a commit frame, or a commit frame header?
  const bool completes_commit = f->commit_page_offset >= 0 && offset == f->commit_page_offset;
  f->commit_page_offset = is_commit_frame_header(data, amount) ? end : -1;

  // The WAL's own header (offset 0) is not buffered: SQLite syncs it at once, and its write's
  // failure is then reported by the write, as without the buffer.
  const bool appends =
      offset > 0 &&
      (f->pending_bytes > 0
           ? offset == f->pending_offset + static_cast<sqlite3_int64>(f->pending_bytes)
           : offset >= f->high_water);
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
  } else if (const int rc = write_wal(f, data, size, offset); rc != SQLITE_OK) {
    return rc;
  }
  f->high_water = std::max(f->high_water, end);
  return completes_commit ? flush(f) : SQLITE_OK;
}

int wal_truncate(sqlite3_file* file, sqlite3_int64 size) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_sync(f); rc != SQLITE_OK) return rc;
  f->high_water = std::min(f->high_water, size);
  f->prepared_end = std::min(f->prepared_end, size);
  return f->wrapped.real->pMethods->xTruncate(f->wrapped.real, size);
}

int wal_sync(sqlite3_file* file, int flags) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_sync(f); rc != SQLITE_OK) return rc;
  if (const int rc = writeback_failure(f->writeback); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xSync(f->wrapped.real, flags);
}

int wal_file_size(sqlite3_file* file, sqlite3_int64* size) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_sync(f); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xFileSize(f->wrapped.real, size);
}

int wal_lock(sqlite3_file* file, int level) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xLock(f->wrapped.real, level);
}

int wal_unlock(sqlite3_file* file, int level) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xUnlock(f->wrapped.real, level);
}

int wal_file_control(sqlite3_file* file, int op, void* arg) {
  WalFile* f = wal(file);
  if (const int rc = flush_before_call(f); rc != SQLITE_OK) return rc;
  return f->wrapped.real->pMethods->xFileControl(f->wrapped.real, op, arg);
}

int wal_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  *out = nullptr;
  if (const int rc = flush_before_read(wal(file), offset, amount); rc != SQLITE_OK) return rc;
  return pass_fetch(file, offset, amount, out);
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
    pass_check_reserved_lock,
    wal_file_control,
    pass_sector_size,
    pass_device_characteristics,
    pass_shm_map,
    pass_shm_lock,
    pass_shm_barrier,
    pass_shm_unmap,
    wal_fetch,
    pass_unfetch,
};

// The lock a connection holds while it writes to the WAL (WAL_WRITE_LOCK, slot 0 of the
// shared-memory locks, in SQLite's wal.c).
constexpr int kWalWriteLock = 0;

// Taking and releasing the write lock begin and end the connection's write transaction.
int db_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
  DbFile* d = db_file(file);
  const bool write_lock =
      (flags & SQLITE_SHM_EXCLUSIVE) != 0 && offset <= kWalWriteLock && kWalWriteLock < offset + n;
  if (d->wal != nullptr && write_lock && (flags & SQLITE_SHM_UNLOCK) != 0) {
    end_write_transaction(d->wal);
  }
  const int rc = pass_shm_lock(file, offset, n, flags);
  if (d->wal != nullptr && write_lock && (flags & SQLITE_SHM_LOCK) != 0 && rc == SQLITE_OK) {
    d->wal->write_lock_taken = true;
  }
  return rc;
}

int db_lock(sqlite3_file* file, int level) {
  DbFile* d = db_file(file);
  const int rc = pass_lock(file, level);
  if (rc == SQLITE_OK) d->lock_level = level;
  return rc;
}

int db_unlock(sqlite3_file* file, int level) {
  DbFile* d = db_file(file);
  const int rc = pass_unlock(file, level);
  if (rc == SQLITE_OK) d->lock_level = std::min(d->lock_level, level);
  return rc;
}

// In WAL mode only a checkpoint writes the database file.
int db_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  const int rc = pass_write(file, data, amount, offset);
  if (rc == SQLITE_OK) {
    start_writeback_after(db_file(file)->writeback, static_cast<std::size_t>(amount));
  }
  return rc;
}

int db_sync(sqlite3_file* file, int flags) {
  if (const int rc = writeback_failure(db_file(file)->writeback); rc != SQLITE_OK) return rc;
  return pass_sync(file, flags);
}

int db_file_control(sqlite3_file* file, int op, void* arg) {
  DbFile* d = db_file(file);
  if (op == kFileControlWalWritebackOff) {
    d->wal_in_steps = false;
    if (d->wal != nullptr) stop_wal_writeback(d->wal);
    return SQLITE_OK;
  }
  if (op == kFileControlWalPreallocate) {
    d->wal_preallocates = true;
    if (d->wal != nullptr) d->wal->preallocates = true;
    return SQLITE_OK;
  }
  if (op == kFileControlWritebackDescriptors) {
    int* out = static_cast<int*>(arg);
    out[0] = d->writeback.fd;
    out[1] = d->wal != nullptr ? d->wal->writeback.fd : -1;
    return SQLITE_OK;
  }
  return pass_file_control(file, op, arg);
}

int db_close(sqlite3_file* file) {
  DbFile* d = db_file(file);
  if (d->wal != nullptr) d->wal->database = nullptr;
  return pass_close(file);
}

const sqlite3_io_methods kDbMethods = {
    3,
    db_close,
    pass_read,
    db_write,
    pass_truncate,
    db_sync,
    pass_file_size,
    db_lock,
    db_unlock,
    pass_check_reserved_lock,
    db_file_control,
    pass_sector_size,
    pass_device_characteristics,
    pass_shm_map,
    db_shm_lock,
    pass_shm_barrier,
    pass_shm_unmap,
    pass_fetch,
    pass_unfetch,
};

int open_main_db(sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  DbFile* d = db_file(file);
  d->wrapped.file.pMethods = nullptr;
  d->wrapped.real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  d->wal = nullptr;
  d->lock_level = SQLITE_LOCK_NONE;
  d->writeback = {-1, 0, 0};
  d->wal_in_steps = true;
  d->wal_preallocates = false;
  const int rc = base->xOpen(base, name, d->wrapped.real, flags, out_flags);
  // SQLite calls xClose on a file whose open failed only when pMethods is set: follow the real
  // object's state.
  if (d->wrapped.real->pMethods != nullptr) d->wrapped.file.pMethods = &kDbMethods;
  if (rc == SQLITE_OK && d->wrapped.file.pMethods != nullptr) {
    d->writeback.fd = sqlite_descriptor(d->wrapped.real, name);
  }
  return rc;
}

int open_wal(sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  WalFile* f = wal(file);
  f->wrapped.file.pMethods = nullptr;
  f->wrapped.real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  f->database = nullptr;
  f->buffering = false;
  f->pending = nullptr;
  f->pending_bytes = 0;
  f->pending_offset = 0;
  f->high_water = 0;
  f->commit_page_offset = -1;
  f->write_lock_taken = false;
  f->lost_from = -1;
  f->lost_rc = SQLITE_OK;
  f->writeback = {-1, 0, 0};
  f->preallocates = false;
  f->prepared_end = 0;
  const int rc = base->xOpen(base, name, f->wrapped.real, flags, out_flags);
  if (f->wrapped.real->pMethods == nullptr) return rc;
  f->wrapped.file.pMethods = &kWalMethods;
  if (rc != SQLITE_OK) return rc;
  f->writeback.fd = sqlite_descriptor(f->wrapped.real, name);
  // Buffered only with the connection's database file wrapped here (to see its write
  // transactions end) and with "powersafe overwrite" (a device setting, on by default): without
  // it SQLite pads a synchronous commit to a sector boundary and may split the commit frame's
  // page into two writes around a sync, which the commit detection does not follow. SQLite
  // decides that when it opens the WAL, from the database file's characteristics, as here.
  sqlite3_file* database = sqlite3_database_file_object(name);
  if (database == nullptr || database->pMethods != &kDbMethods) return rc;
  if ((pass_device_characteristics(database) & SQLITE_IOCAP_POWERSAFE_OVERWRITE) == 0) return rc;
  DbFile* d = db_file(database);
  if (d->wal != nullptr) return rc;  // not expected: one WAL per database file object
  if (!d->wal_in_steps) stop_wal_writeback(f);
  f->preallocates = d->wal_preallocates;
  d->wal = f;
  f->database = d;
  f->buffering = true;
  return rc;
}

int open_file(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  if ((flags & SQLITE_OPEN_MAIN_DB) != 0) return open_main_db(name, file, flags, out_flags);
  if ((flags & SQLITE_OPEN_WAL) != 0) return open_wal(name, file, flags, out_flags);
  return base->xOpen(base, name, file, flags, out_flags);
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
  vfs.szOsFile = static_cast<int>(kRealOffset) + base->szOsFile;
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

void set_sync_file_range_for_tests(SyncFileRange call) {
  sync_file_range_call.store(call != nullptr ? call : &real_sync_file_range);
}

std::uint64_t writeback_steps_started() { return writeback_starts.load(std::memory_order_relaxed); }

}  // namespace wallex
