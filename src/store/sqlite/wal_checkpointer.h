// WalCheckpointer: copies an SQLite database's committed WAL frames into the database file on a
// thread and connection of its own, so that the connection that writes never pays for a
// checkpoint inside a commit. A 16–80 MiB checkpoint is tens of milliseconds of copying and an
// fsync of the database file; inside a commit it stalls whatever waits for that commit.
//
// The writing connection's WAL hook (attach()) wakes the thread once the WAL holds
// frames_to_start frames; the thread runs a PASSIVE checkpoint, which never blocks the writer or
// readers and copies what no reader still needs. SQLite starts the WAL over in a transaction that
// began after a checkpoint had copied every frame; a writer with gaps between its commits (the
// store's, thousands a second) gives it those moments, one that commits back to back (a
// projector behind the log) calls settle() before each transaction (frames_to_settle). Should
// the background checkpoints fall far behind (frames_to_checkpoint_inline), the writer
// checkpoints after its commit itself, so the WAL (and the disk it takes) stays bounded whatever
// the load.
//
// Thread safety: on_commit (the hook) runs on the writing connection's thread; everything else
// belongs to the owner. The destructor stops and joins the thread and closes its connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "store/store.h"

struct sqlite3;

namespace wallex {

class WalCheckpointer {
 public:
  struct Options {
    std::string path;         // the database file
    std::string thread_name;  // at most 15 characters
    // PRAGMA synchronous of the checkpoint connection: "FULL" or "NORMAL" both fsync the WAL
    // before copying it and the database file before the WAL may be reused.
    std::string synchronous = "FULL";
    // ~16 MiB of WAL wakes the thread; ~1 GiB, far beyond what passive checkpoints leave
    // behind, makes the writer checkpoint after its commit itself.
    int frames_to_start = 4000;
    int frames_to_checkpoint_inline = 262'144;
    // For a writer that calls settle() before each transaction (0: never). SQLite starts the WAL
    // over only in a transaction that began when every frame had been copied, so a writer that
    // commits back to back (a projector behind the log) never leaves the background checkpoint
    // such a moment, and the WAL grows without end (1.3 GB of read.db-wal in a 40 s run). Once
    // the WAL holds this many frames, settle() waits for the background checkpoint and copies
    // what is left itself: a short pause of the writer instead of an ever longer WAL.
    int frames_to_settle = 0;
    // False: settle() leaves the WAL to a later transaction when a background checkpoint is
    // under way, until the WAL is twice frames_to_settle.
    bool settle_waits = true;
    // Once the thread has been woken, the next wake-up waits until the WAL grew by this many
    // frames more (0: every commit past frames_to_start wakes it). Without it, a WAL that cannot
    // start over (the writer commits again before each checkpoint ends) costs a wake-up and two
    // fsyncs for every commit's few frames; a writer that calls settle() bounds it instead.
    // settle() too, after a settle that did not start the WAL over, waits for this much growth.
    int frames_to_rewake = 0;
    // True once the store has failed: no checkpoint runs, and the connection closes without the
    // checkpoint SQLite would run at close. May be empty (never failed).
    std::function<bool()> failed;
    // A checkpoint failed with this SQLite result code and message. May be empty.
    std::function<void(int code, const std::string& message)> on_error;
  };

  explicit WalCheckpointer(Options options);
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;
  ~WalCheckpointer();

  // Opens the checkpoint connection and starts the thread.
  [[nodiscard]] Status<StoreError> start();
  // Installs the WAL hook on the writing connection (replacing SQLite's automatic checkpoints,
  // which would run inside its commits). The connection must close before this object dies.
  void attach(sqlite3* writer);

  int frames_to_checkpoint_inline() const { return options_.frames_to_checkpoint_inline; }
  // Background checkpoints run so far (for tests).
  std::uint64_t runs() const { return runs_.load(std::memory_order_relaxed); }
  // From the WAL hook: wakes the thread when the WAL has grown enough.
  void on_commit(int wal_frames);
  // Called by the owner of the writing connection before it begins a transaction, on that
  // connection: see Options::frames_to_settle. Returns the result of its checkpoint (SQLITE_OK
  // when it ran none; SQLITE_BUSY, the background checkpoint started again, is harmless).
  int settle(sqlite3* writer);

 private:
  void run();
  bool failed() const { return options_.failed && options_.failed(); }

  Options options_;
  sqlite3* db_ = nullptr;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false;
  bool running_ = false;  // a background checkpoint is being run
  bool stopping_ = false;
  std::condition_variable idle_;    // pending_ and running_ both went false
  std::atomic<int> wal_frames_{0};  // after the writer's last commit
  int woken_at_frames_ = 0;         // the WAL's size at the last wake-up (the writer's thread)
  int settled_at_frames_ = 0;       // the WAL's size at the last settle() (the writer's thread)
  std::atomic<std::uint64_t> runs_{0};
};

}  // namespace wallex
