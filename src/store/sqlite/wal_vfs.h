// A VFS over SQLite's default one that writes the frames a commit appends to a WAL file with one
// write call instead of two per frame, and that has the kernel write a WAL or database file to
// the device in steps as it is written rather than all at its fsync (below).
//
// Why: SQLite 3.40 writes every WAL frame as two pwrite calls, its 24-byte header and then its
// page. A commit of 40 pages is 80 system calls, each paying the kernel's write path for a 4 KiB
// page; at the small batches of 20 connections that was 27% of the writer thread's CPU (perf,
// BENCHMARKS.md).
//
// How: the VFS wraps only files opened as WAL files. A write that appends beyond everything
// this file object has written since the WAL's header was last written, or since the
// connection's write transaction began (SQLite adding frames), is copied to a buffer; the buffer
// goes to the file, in pieces of 64 KiB, as soon as the page of a commit frame (a frame header
// whose "database size after commit" field is not zero) has been written, so a commit's frames
// are in the file before SQLite publishes them to other connections in the shared-memory index
// and before the commit returns. A write below that mark (SQLite rewriting a frame header after
// recomputing checksums, or overwriting frames of a transaction it rolled back) goes to the file
// at once, after what is pending; so does every write when the buffer is full. Any other call on
// the file (a read, a sync, the size, a truncate, close) writes the pending bytes first. Frames
// a transaction spills before its commit wait in the buffer; SQLite reads them back only through
// this file object.
//
// Write transactions are seen through the connection's database file, which the VFS wraps for
// nothing else: they begin and end with the WAL write lock (a shared-memory lock). When the lock
// is released, whatever is still pending belongs to a rolled-back or failed transaction: it is
// written then, while the lock is held, as SQLite itself would have written it (frames past the
// last commit, which recovery ignores). Kept longer, those dead frames could reach the file after
// another connection had written its own frames at the same place. With `PRAGMA locking_mode =
// EXCLUSIVE` SQLite takes no shared-memory locks; nothing is buffered while the database file's
// exclusive lock is held.
//
// Errors: a write's own failure (also of the pending bytes it flushed) is returned from that
// write, and SQLite fails the transaction on it; so does the failure of the pending bytes before
// a sync, a truncate or the size. Before a read it is returned as an I/O error, so that SQLite
// rolls back the whole transaction rather than one statement (it would for a full disk reported
// by a read). Bytes a failed flush dropped stay lost for the rest of the write transaction:
// every later write, sync, truncate or size call fails with the first failure's code, and every
// read that reaches the lost bytes with an I/O error, so the transaction cannot commit even when
// its caller ignored the first error (an incremental blob read does not roll back), nor after
// rolling back to a savepoint taken before them (conservative: the lost bytes may be dead). The
// WAL's own header is never buffered: a full disk there is reported by its write, as the service's
// "store full" answer expects.
//
// Not buffered: a WAL whose database lacks "powersafe overwrite" (a device setting, on by
// default), for which SQLite pads synchronous commits to sectors and may split the commit
// frame's page into two writes around a sync; and a WAL whose database file was not opened
// through this VFS.
//
// WalVfsTest checks each of these cases on the files as a kill would leave them.
// Journals and temporary files are the default VFS's own objects, unwrapped; main database files
// are wrapped to see the write lock and their own lock, and for the steps below.
//
// Writeback in steps: every kWritebackStepBytes written through a wrapped WAL or main database
// file object, the VFS asks the kernel to start writing the file's dirty pages to the device
// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: asynchronous, no cache flush, nothing made durable;
// fsync stays the only durability point). Why: the disk here has a volatile write cache and no
// FUA, so every fsync is a flush of the whole device cache, and it waits for everything any file
// had queued before it. Left to themselves, a projector's 16 MiB of unsynced WAL and a
// checkpoint's copied pages reach the device all at once at the checkpoint's fsync, and the
// store's per-batch fdatasync queued behind them took up to ~20 ms; written out as they are
// produced, each flush carries a few hundred KiB (BENCHMARKS.md, "Writeback in steps"). The call
// goes to SQLite's own descriptor of the file (found in its unix VFS's file object and checked
// against the file's name; not found, the file is written as before): a descriptor of our own
// would have to be closed some day, and closing any descriptor of a file drops the process's
// POSIX locks on it, SQLite's included. An error of the call fails the object's next sync.
//
// Preallocation, for a WAL that is fsync'd after every commit (the store's): an fdatasync of a
// file that grew must also write the inode with its new size, one more synchronous write to the
// device before the cache flush; measured on this machine's ext4 (no journal) an fdatasync after
// a 12 KiB append took 176-234 µs (p50), after the same write into zeros written earlier 128-164
// µs (BENCHMARKS.md, "The WAL's growth"). SQLite appends to the WAL until the WAL starts over, and
// a store's WAL grows to its 64 MiB limit after every start. So, when a write comes within
// kWalPreallocateStepBytes of the end of the zeros written so far, the VFS writes zeros from the
// file's end (its size read again then, under the lock SQLite holds while it writes to a WAL:
// zeros never land on anyone's frames) to the next multiple of that step at least a step beyond
// the write: one step of zeros at a time, and the fdatasync after it writes the new size once per
// step, not once per commit. Zeros are not a frame SQLite could take for one (its frames carry
// the header's salt and checksums): recovery stops at the first of them, as it stops at the stale
// frames a WAL that started over leaves beyond its last commit. A write of zeros that fails with
// an I/O error is the failure of the write that needed it; one that finds the disk full leaves
// that write to its own fate (it may still fit) and is tried again at the next write past it.
// Written zeros rather than fallocate(): an allocated but unwritten range costs the same metadata
// write when it is first written (measured: 240-260 µs, worse than appending).
#pragma once

#include <cstddef>
#include <cstdint>

struct sqlite3_vfs;

namespace wallex {

// Bytes a WAL file object holds before it writes them in any case (~250 frames of 4 KiB).
inline constexpr std::size_t kPendingBytesMax = 1 << 20;

// Bytes written through one file object between two starts of its writeback.
inline constexpr std::size_t kWritebackStepBytes = 256 * 1024;

// `sqlite3_file_control(db, "main", kFileControlWalWritebackOff, nullptr)`: no writeback in
// steps for the WAL of this connection (one that fsyncs its WAL after every commit anyway, where
// the steps would only move the kernel's work from that fsync to the writing thread).
// SQLITE_NOTFOUND when the connection's database file is not this VFS's.
inline constexpr int kFileControlWalWritebackOff = 0x57580001;
// `sqlite3_file_control(db, "main", kFileControlWalPreallocate, nullptr)`: the WAL of this
// connection grows ahead of its frames, kWalPreallocateStepBytes of zeros at a time (below).
// SQLITE_NOTFOUND when the connection's database file is not this VFS's.
inline constexpr int kFileControlWalPreallocate = 0x57580003;
// `sqlite3_file_control(db, "main", kFileControlWritebackDescriptors, int[2])`: the descriptors
// the steps use for the database file and its WAL (-1: none), for tests.
inline constexpr int kFileControlWritebackDescriptors = 0x57580002;

// A preallocating WAL (kFileControlWalPreallocate) is kept at least this many bytes of zeros
// ahead of its writes, extended this many at a time.
inline constexpr std::size_t kWalPreallocateStepBytes = 256 * 1024;

// Registers the VFS as SQLite's default, over the default it finds (unix); called again, makes it
// the default again. False when SQLite has no default VFS or the registration failed.
bool install_wal_vfs();

// The registered VFS (nullptr before install_wal_vfs succeeded), for tests.
sqlite3_vfs* wal_vfs();

// How many times a file's writeback was started in steps (process-wide), for tests.
std::uint64_t writeback_steps_started();

// The call that starts a writeback, replaced by tests to fail it; nullptr restores the real one.
using SyncFileRange = int (*)(int fd, long offset, long bytes, unsigned int flags);
void set_sync_file_range_for_tests(SyncFileRange call);

}  // namespace wallex
