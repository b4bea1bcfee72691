// SqliteRelayCheckpoint: the relay's published position in <data_dir>/relay.db, a file of its
// own. Not wallex.db: the writer owns that file and every write there would compete with group
// commits for its lock. Not read.db: `wallex rebuild` replaces it, and the published position
// is not derived from the log (it records what Kafka acknowledged), so it must outlive rebuilds.
//
// WAL with synchronous=NORMAL: a power failure may lose the last saves; the position then comes
// back lower, never higher, and the relay publishes those events again — duplicates that
// consumers drop by position, never a gap.
#pragma once

#include <memory>
#include <string>

#include "kafka/published_position_store.h"

namespace wallex {

class SqliteRelayCheckpoint final : public PublishedPositionStore {
 public:
  // Creates relay.db and its table when missing. Holds an exclusive lock on relay.lock for its
  // lifetime: a second relay of the same data directory (this process or another) is refused.
  static Result<std::unique_ptr<SqliteRelayCheckpoint>, StoreError> open(
      const std::string& data_dir);
  static std::string path_in(const std::string& data_dir);
  ~SqliteRelayCheckpoint() override;

  Result<std::int64_t, StoreError> load() override;
  Status<StoreError> save(std::int64_t position, TimestampMs saved_at_ms) override;

  struct Impl;

 private:
  explicit SqliteRelayCheckpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
