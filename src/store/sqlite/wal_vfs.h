// A VFS over SQLite's default one that writes the frames a commit appends to a WAL file with one
// write call instead of two per frame.
//
// Why: SQLite 3.40 writes every WAL frame as two pwrite calls, its 24-byte header and then its
// page. A commit of 40 pages is 80 system calls, each paying the kernel's write path for a 4 KiB
// page; at the small batches of 20 connections that was 27% of the writer thread's CPU (perf,
// BENCHMARKS.md).
//
// How: the VFS wraps only files opened as WAL files. Their writes that append to what is pending
// are copied to a buffer; the buffer goes to the file, in one write, as soon as the page of a
// commit frame (a frame header whose "database size after commit" field is not zero) is in it,
// so a commit's frames are in the file before SQLite publishes them to other connections in the
// shared-memory index and before the commit returns. Any other call on the file (a read, a sync,
// the size, a truncate, a write elsewhere, close) writes the pending bytes first, and so does a
// buffer reaching kPendingBytesMax. A write error is returned from the write that flushed, which
// is the commit's last page write at the latest, so SQLite fails and rolls back that commit as
// it would have without the buffer. Frames a transaction spills before its commit wait in the
// buffer; SQLite reads them back only through this file object, which flushes first.
//
// Every other file (databases, journals) is the default VFS's own object, unwrapped.
#pragma once

#include <cstddef>

struct sqlite3_vfs;

namespace wallex {

// Bytes a WAL file object holds before it writes them in any case (~250 frames of 4 KiB).
inline constexpr std::size_t kPendingBytesMax = 1 << 20;

// Registers the VFS as SQLite's default, over the default it finds (unix); called again, makes it
// the default again. False when SQLite has no default VFS or the registration failed.
bool install_wal_vfs();

// The registered VFS (nullptr before install_wal_vfs succeeded), for tests.
sqlite3_vfs* wal_vfs();

}  // namespace wallex
