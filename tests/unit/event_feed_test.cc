// The in-memory feed of durable events (projection/event_feed.h): whatever it serves must be
// exactly what the log would have, and whatever it cannot serve must come from the log.
#include "projection/event_feed.h"

#include <gtest/gtest.h>

#include "projection/rebuild.h"
#include "projection_fixture.h"

namespace wallex::testing {
namespace {

class EventFeedTest : public ProjectionFixture {
 protected:
  // The log's events in (first, last], as a batch the syncer would push.
  std::vector<LoggedEvent> batch(std::int64_t first, std::int64_t last) {
    auto read = log().read_events(first - 1, static_cast<std::size_t>(last - first + 1));
    EXPECT_TRUE(read.ok());
    EXPECT_EQ(read.value().size(), static_cast<std::size_t>(last - first + 1));
    return std::move(read).value();
  }
  static std::vector<std::int64_t> positions(const std::vector<LoggedEvent>& events) {
    std::vector<std::int64_t> out;
    for (const LoggedEvent& e : events) out.push_back(e.position);
    return out;
  }
  // Reads through `fed` and checks the result against the log itself.
  std::vector<LoggedEvent> read_checked(FedEventLog& fed, std::int64_t after, std::size_t limit) {
    std::vector<LoggedEvent> events;
    EXPECT_TRUE(fed.read_events_into(after, limit, events).ok());
    // The feed may serve fewer events than the log holds (what it has), never others.
    const std::vector<LoggedEvent> expected = log().read_events(after, limit).value();
    EXPECT_LE(events.size(), expected.size());
    EXPECT_EQ(events.empty(), expected.empty());
    for (std::size_t i = 0; i < std::min(events.size(), expected.size()); ++i) {
      EXPECT_TRUE(events[i] == expected[i]) << "at position " << expected[i].position;
    }
    return events;
  }
  void fill(int credits) {
    create("a", "10");
    for (int i = 0; i < credits; ++i) credit("a", "1");
  }
  // Reads (after, limit] through `fed`: the positions it gives, then the counters after it (events
  // served by the feed so far, reads that went to the log so far).
  void expect_read(FedEventLog& fed, std::int64_t after, std::size_t limit,
                   const std::vector<std::int64_t>& expected, std::uint64_t from_feed,
                   std::uint64_t from_log) {
    EXPECT_EQ(positions(read_checked(fed, after, limit)), expected) << "after " << after;
    EXPECT_EQ(fed.events_from_feed(), from_feed) << "after " << after;
    EXPECT_EQ(fed.reads_from_log(), from_log) << "after " << after;
  }
  static std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
    std::vector<std::int64_t> out;
    for (std::int64_t p = first; p <= last; ++p) out.push_back(p);
    return out;
  }
};

TEST_F(EventFeedTest, ServesContiguousBatchesInOrderAndSplitsThemAtTheLimit) {
  fill(5);  // positions 1..7
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 3));
  feed.push(batch(4, 7));
  expect_read(fed, 0, 2, range(1, 2), 2, 0);
  expect_read(fed, 2, 3, range(3, 5), 5, 0);
  expect_read(fed, 5, 100, range(6, 7), 7, 0);
  // Nothing left in the feed: the log answers (with nothing new).
  expect_read(fed, 7, 100, {}, 7, 1);
}

// A reader behind the feed reads the log until it reaches the feed; events the feed gave away
// once (a batch that failed is read again from its checkpoint) come from the log.
TEST_F(EventFeedTest, WhatTheFeedDoesNotHoldComesFromTheLog) {
  fill(5);
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(5, 7));
  expect_read(fed, 0, 2, range(1, 2), 0, 1);
  // From inside the feed's first batch: the events before are skipped, the rest served.
  expect_read(fed, 5, 100, range(6, 7), 2, 1);
  expect_read(fed, 3, 2, range(4, 5), 2, 2);
}

TEST_F(EventFeedTest, ABatchThatDoesNotContinueTheLastEmptiesTheFeed) {
  fill(8);  // positions 1..10
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 2));
  feed.push(batch(6, 8));  // 3..5 were never pushed
  expect_read(fed, 0, 100, range(1, 10), 0, 1);
  // The same once the reader holds part of the feed already.
  feed.push(batch(1, 3));
  expect_read(fed, 0, 1, range(1, 1), 1, 1);
  feed.push(batch(7, 10));
  expect_read(fed, 1, 100, range(2, 10), 1, 2);
}

TEST_F(EventFeedTest, BeyondItsLimitTheFeedDropsTheOldestBatches) {
  fill(10);  // positions 1..12
  EventFeed feed(4);
  EXPECT_EQ(feed.events_max(), 4u);
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 3));
  feed.push(batch(4, 6));  // 6 events held: the first batch goes
  expect_read(fed, 0, 100, range(1, 12), 0, 1);
  expect_read(fed, 3, 100, range(4, 6), 3, 1);
  feed.push(batch(7, 8));
  expect_read(fed, 6, 1, range(7, 7), 4, 1);
  // What the reader took and has not served counts too: with it 5 events, so its oldest batch
  // (7..8) goes, and position 8 comes from the log.
  feed.push(batch(9, 10));
  feed.push(batch(11, 12));
  expect_read(fed, 7, 100, range(8, 12), 4, 2);
  expect_read(fed, 8, 100, range(9, 12), 8, 2);
}

// A projector on the fed log, its feed pushed in batches of every size and too small to hold
// them all, builds the same read side as a rebuild from the log.
TEST_F(EventFeedTest, AProjectorOnTheFeedBuildsWhatARebuildBuilds) {
  workload(7, 200);
  const std::int64_t head = log().last_position().value();
  EventFeed feed(40);
  FedEventLog fed(log(), feed);
  RunnerOptions options;
  options.batch_events_max = 13;
  ProjectionRunner projector(fed, read_store(), make_projectors(), clock_, options);
  ASSERT_TRUE(projector.open().ok());
  std::int64_t pushed = 0;
  std::int64_t size = 1;
  while (pushed < head) {
    const std::int64_t last = std::min(head, pushed + size);
    feed.push(batch(pushed + 1, last));
    pushed = last;
    size = size % 29 + 1;
    // Catch up now and then only, so that the feed overflows in between.
    if (size % 5 == 0) {
      ASSERT_TRUE(projector.catch_up().ok());
    }
  }
  ASSERT_TRUE(projector.catch_up().ok());
  for (const ProjectorId id : kAllProjectors) EXPECT_EQ(projector.checkpoint(id), head);
  EXPECT_GT(fed.events_from_feed(), 0u);
  EXPECT_GT(fed.reads_from_log(), 0u);
  const ReadSideDump fed_side = dump(read_store());
  EXPECT_EQ(fed_side.wallet_events.size(), static_cast<std::size_t>(head));
  auto rebuilt = rebuild(log(), read_store(), clock_);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().message;
  EXPECT_EQ(dump(read_store()), fed_side);
}

}  // namespace
}  // namespace wallex::testing
