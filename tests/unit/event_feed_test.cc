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
      EXPECT_EQ(static_cast<const StoredEvent&>(events[i]),
                static_cast<const StoredEvent&>(expected[i]));
      EXPECT_EQ(events[i].data_json, expected[i].data_json);
      EXPECT_EQ(events[i].metadata_json, expected[i].metadata_json);
    }
    return events;
  }
  void fill(int credits) {
    create("a", "10");
    for (int i = 0; i < credits; ++i) credit("a", "1");
  }
};

TEST_F(EventFeedTest, ServesContiguousBatchesInOrderAndSplitsThemAtTheLimit) {
  fill(5);  // positions 1..7
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 3));
  feed.push(batch(4, 7));
  EXPECT_EQ(positions(read_checked(fed, 0, 2)), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(positions(read_checked(fed, 2, 3)), (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(positions(read_checked(fed, 5, 100)), (std::vector<std::int64_t>{6, 7}));
  EXPECT_EQ(fed.events_from_feed(), 7u);
  EXPECT_EQ(fed.reads_from_log(), 0u);
  // Nothing left in the feed: the log answers (with nothing new).
  EXPECT_TRUE(read_checked(fed, 7, 100).empty());
  EXPECT_EQ(fed.reads_from_log(), 1u);
}

TEST_F(EventFeedTest, AReaderBehindTheFeedReadsTheLogUntilItReachesTheFeed) {
  fill(5);
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(5, 7));
  EXPECT_EQ(positions(read_checked(fed, 0, 2)), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(fed.reads_from_log(), 1u);
  // From inside the feed's first batch: the events before are skipped, the rest served.
  EXPECT_EQ(positions(read_checked(fed, 5, 100)), (std::vector<std::int64_t>{6, 7}));
  EXPECT_EQ(fed.events_from_feed(), 2u);
  EXPECT_EQ(fed.reads_from_log(), 1u);
}

TEST_F(EventFeedTest, EventsTakenOnceAreReadFromTheLogWhenAskedForAgain) {
  fill(5);
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 7));
  EXPECT_EQ(read_checked(fed, 0, 100).size(), 7u);
  // A batch that failed is read again from its checkpoint: the feed gave those events away.
  EXPECT_EQ(positions(read_checked(fed, 3, 2)), (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(fed.reads_from_log(), 1u);
  EXPECT_EQ(fed.events_from_feed(), 7u);
}

TEST_F(EventFeedTest, ABatchThatDoesNotContinueTheLastEmptiesTheFeed) {
  fill(8);  // positions 1..10
  EventFeed feed;
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 2));
  feed.push(batch(6, 8));  // 3..5 were never pushed
  EXPECT_EQ(positions(read_checked(fed, 0, 100)),
            (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(fed.reads_from_log(), 1u);
  EXPECT_EQ(fed.events_from_feed(), 0u);
  // The same once the reader holds part of the feed already.
  feed.push(batch(1, 3));
  EXPECT_EQ(positions(read_checked(fed, 0, 1)), (std::vector<std::int64_t>{1}));
  feed.push(batch(7, 10));
  EXPECT_EQ(positions(read_checked(fed, 1, 100)),
            (std::vector<std::int64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(fed.reads_from_log(), 2u);
  EXPECT_EQ(fed.events_from_feed(), 1u);
}

TEST_F(EventFeedTest, BeyondItsLimitTheFeedDropsTheOldestBatches) {
  fill(10);  // positions 1..12
  EventFeed feed(4);
  EXPECT_EQ(feed.events_max(), 4u);
  FedEventLog fed(log(), feed);
  feed.push(batch(1, 3));
  feed.push(batch(4, 6));  // 6 events held: the first batch goes
  EXPECT_EQ(read_checked(fed, 0, 100).size(), 12u);
  EXPECT_EQ(fed.reads_from_log(), 1u);
  EXPECT_EQ(positions(read_checked(fed, 3, 100)), (std::vector<std::int64_t>{4, 5, 6}));
  EXPECT_EQ(fed.events_from_feed(), 3u);
  feed.push(batch(7, 8));
  EXPECT_EQ(positions(read_checked(fed, 6, 1)), (std::vector<std::int64_t>{7}));
  // What the reader took and has not served counts too: with it 5 events, so its oldest batch
  // (7..8) goes, and position 8 comes from the log.
  feed.push(batch(9, 10));
  feed.push(batch(11, 12));
  EXPECT_EQ(positions(read_checked(fed, 7, 100)), (std::vector<std::int64_t>{8, 9, 10, 11, 12}));
  EXPECT_EQ(fed.reads_from_log(), 2u);
  EXPECT_EQ(positions(read_checked(fed, 8, 100)), (std::vector<std::int64_t>{9, 10, 11, 12}));
  EXPECT_EQ(fed.events_from_feed(), 8u);
  EXPECT_EQ(fed.reads_from_log(), 2u);
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
