// PgLease: "at most one instance does X at a time, with failover", on a PostgreSQL session-level
// advisory lock held by a connection of its own.
//
// try_acquire() asks for the lock without waiting (pg_try_advisory_lock). The lock belongs to the
// connection's server session: it is released when the session ends for any reason (the process
// is killed, the connection breaks, the server restarts), so another instance's next
// try_acquire() takes over; there is no timeout to tune and no clock involved. A holder that
// loses its connection has lost the lease: held() turns false once a statement notices it
// (check() runs one), and the caller must stop doing X before trying again.
//
// Safety does not rest on the lease alone: the projection's writes are serialized by a table
// lock and re-read their checkpoints (pg_read_store.h), and the relay's published position never
// moves backwards, so two holders during a hand-over (the old one has not noticed yet) can only
// waste work or publish an event twice, never skip or double-apply one.
//
// Thread safety: none; one owner thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace wallex {

class PgConnection;

// Lease keys (advisory lock ids), one per duty.
inline constexpr std::int64_t kProjectionLeaseKey = 6287390496923405392;  // 'WALXPROJ'-ish
inline constexpr std::int64_t kRelayLeaseKey = 6287390496923406412;       // 'WALXRLAY'-ish

class PgLease {
 public:
  // `holder_name` identifies this instance to others (GET /health); at most 48 characters
  // (PostgreSQL truncates application_name at 63 bytes; "wallex " is prefixed).
  static constexpr std::size_t kHolderNameMax = 48;
  static Result<std::unique_ptr<PgLease>, StoreError> open(const std::string& url, std::int64_t key,
                                                           const std::string& holder_name);
  ~PgLease();
  PgLease(const PgLease&) = delete;
  PgLease& operator=(const PgLease&) = delete;

  // True when this connection holds the lock (now or already). An error (kIo) means the
  // connection is gone: the lease is not held, and open() a new PgLease to try again.
  Result<bool, StoreError> try_acquire();
  // Runs a statement to see whether the connection (and with it the lock) is still there.
  bool check();
  bool held() const { return held_; }
  // The holder_name of whichever session holds the lock, if any (any instance may ask).
  Result<std::optional<std::string>, StoreError> holder();

 private:
  PgLease(std::unique_ptr<PgConnection> connection, std::int64_t key);
  std::unique_ptr<PgConnection> connection_;
  std::int64_t key_;
  bool held_ = false;
};

}  // namespace wallex
