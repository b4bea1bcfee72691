// PublishedPositionStore: where the relay keeps its published position durably — every event
// of the log up to it is confirmed delivered to Kafka. Saved only after the delivery reports of
// the whole prefix succeeded, so after a restart the relay resends from there: an event may be
// published twice (at least once), never skipped.
//
// Thread safety: none; the relay's thread owns it.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace wallex {

class PublishedPositionStore {
 public:
  virtual ~PublishedPositionStore() = default;
  // 0 when nothing was ever published.
  virtual Result<std::int64_t, StoreError> load() = 0;
  // Never moves the position backwards (a lower value is ignored).
  virtual Status<StoreError> save(std::int64_t position, TimestampMs saved_at_ms) = 0;
};

}  // namespace wallex
