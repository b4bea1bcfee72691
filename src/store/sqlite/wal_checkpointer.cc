#include "store/sqlite/wal_checkpointer.h"

#include <pthread.h>
#include <sqlite3.h>

#include <chrono>
#include <utility>

#include "common/log.h"
#include "store/sqlite/sqlite_error.h"

namespace wallex {
namespace {

int on_wal_commit(void* checkpointer, sqlite3* db, const char*, int wal_frames) {
  auto* self = static_cast<WalCheckpointer*>(checkpointer);
  self->on_commit(wal_frames);
  if (wal_frames >= self->frames_to_checkpoint_inline()) {
    // SQLITE_BUSY (the background checkpoint holds the lock) is fine: retried after the next
    // commit.
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

}  // namespace

WalCheckpointer::WalCheckpointer(Options options) : options_(std::move(options)) {}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  idle_.notify_all();
  if (thread_.joinable()) thread_.join();
  // After a failure nothing may write to the files again, not even SQLite's checkpoint at close.
  if (failed()) close_without_checkpoint(db_);
  sqlite3_close_v2(db_);
}

Status<StoreError> WalCheckpointer::start() {
  const int rc =
      open_sqlite(options_.path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  if (rc != SQLITE_OK) return fail(sqlite_error(db_, rc, "opening the checkpoint connection"));
  // The pragma reads the schema, which fails at once with SQLITE_BUSY (no busy handler) while
  // another process switches the same new file to WAL (several `wallex project` members opening
  // one read store).
  const std::string pragmas =
      "PRAGMA synchronous = " + options_.synchronous + "; PRAGMA busy_timeout = 0";
  if (const int set = exec_while_busy(db_, pragmas.c_str()); set != SQLITE_OK) {
    return fail(sqlite_error(db_, set, "configuring the checkpoint connection"));
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), options_.thread_name.c_str());
    run();
  });
  return Ok{};
}

void WalCheckpointer::attach(sqlite3* writer) { sqlite3_wal_hook(writer, on_wal_commit, this); }

void WalCheckpointer::on_commit(int wal_frames) {
  wal_frames_.store(wal_frames, std::memory_order_relaxed);
  if (wal_frames < woken_at_frames_) woken_at_frames_ = 0;  // the WAL started over
  if (wal_frames < settled_at_frames_) settled_at_frames_ = 0;
  if (wal_frames < options_.frames_to_start) return;
  if (woken_at_frames_ > 0 && wal_frames - woken_at_frames_ < options_.frames_to_rewake) return;
  woken_at_frames_ = wal_frames;
  {
    std::lock_guard lock(mutex_);
    pending_ = true;
  }
  wake_.notify_one();
}

int WalCheckpointer::settle(sqlite3* writer) {
  const int frames = wal_frames_.load(std::memory_order_relaxed);
  if (options_.frames_to_settle <= 0 || frames < options_.frames_to_settle || failed()) {
    return SQLITE_OK;
  }
  // A WAL that did not start over after the last settle (a reader still on its frames) is
  // settled again only once it has grown by frames_to_rewake, not before every transaction.
  if (settled_at_frames_ > 0 && frames - settled_at_frames_ < options_.frames_to_rewake) {
    return SQLITE_OK;
  }
  // Bounded: a checkpoint that hangs on the disk must not hold the writer forever.
  constexpr auto kWaitMax = std::chrono::seconds(5);
  {
    std::unique_lock lock(mutex_);
    const bool busy = pending_ || running_;
    // When the thread is idle, what is left to copy is the frames of the last few commits; until
    // the WAL reaches twice the threshold the writer waits for such a moment, not for the thread.
    if (busy && !options_.settle_waits && frames < 2 * options_.frames_to_settle) {
      return SQLITE_OK;
    }
    idle_.wait_for(lock, kWaitMax, [this] { return (!pending_ && !running_) || stopping_; });
  }
  // What the background checkpoint has not copied yet; SQLITE_BUSY (it started again) is fine.
  const int rc =
      sqlite3_wal_checkpoint_v2(writer, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  wal_frames_.store(0, std::memory_order_relaxed);
  settled_at_frames_ = frames;
  return rc == SQLITE_BUSY ? SQLITE_OK : rc;
}

void WalCheckpointer::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    idle_.notify_all();
    wake_.wait(lock, [this] { return pending_ || stopping_; });
    if (stopping_) return;
    pending_ = false;
    if (failed()) continue;
    running_ = true;
    lock.unlock();
    int wal_frames = 0, checkpointed = 0;
    const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames,
                                             &checkpointed);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      const std::string message = "background checkpoint of " + options_.path +
                                  " failed: " + sqlite3_errstr(rc) + " (" + sqlite3_errmsg(db_) +
                                  ")";
      log::error(message);
      if (options_.on_error) options_.on_error(rc, message);
    }
    lock.lock();
    running_ = false;
    runs_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace wallex
