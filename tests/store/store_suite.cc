#include "store_suite.h"

namespace wallex::testing {

Money money(std::string_view text) { return Money::parse(text).value(); }

Event created(const std::string& id, TimestampMs at) {
  Event e;
  e.type = EventType::kWalletCreated;
  e.wallet_id = id;
  e.version = 0;
  e.occurred_at_ms = at;
  e.owner_id = "owner-of-" + id;
  return e;
}

Event credited(const std::string& id, std::int64_t version, std::string_view amount,
               std::optional<std::string> description) {
  Event e;
  e.type = EventType::kWalletCredited;
  e.wallet_id = id;
  e.version = version;
  e.occurred_at_ms = 2000 + version;
  e.amount = money(amount);
  e.description = std::move(description);
  return e;
}

WalletState state(const std::string& id, std::string_view balance, std::int64_t version) {
  return WalletState{id, "owner-of-" + id, money(balance), version, 1000, 2000 + version};
}

WalletWrite write(const std::string& id, std::string_view balance, std::int64_t version,
                  std::int64_t expected) {
  return WalletWrite{state(id, balance, version), expected};
}

CommitBatch::Entry entry(std::vector<Event> events, std::string correlation,
                         std::optional<std::string> key) {
  CommitBatch::Entry e;
  e.events = std::move(events);
  e.metadata = EventMetadata{std::move(correlation), key};
  if (key) e.idempotency = IdempotencyRecord{*key, "fp:" + *key, 201, "{\"body\":1}", 0, 5000};
  return e;
}

namespace {

TEST_P(StoreSuite, EmptyStoreHoldsNothing) {
  EXPECT_TRUE(store_->load_wallets().value().empty());
  EXPECT_EQ(store_->last_position().value(), 0);
  EXPECT_TRUE(store_->read_events(0, 100).value().empty());
  EXPECT_FALSE(store_->find_idempotency("k").value().has_value());
}

TEST_P(StoreSuite, CommitAssignsContiguousPositionsAndRoundTripsEvents) {
  Event out;
  out.type = EventType::kWalletTransferInitiated;
  out.wallet_id = "a";
  out.version = 2;
  out.occurred_at_ms = 3000;
  out.amount = money("0.3");
  out.description = "Transfer to wallet b \"quoted\" \n and ünïcode";
  out.transfer_id = "t-1";
  out.counterparty_id = "b";
  Event in = out;
  in.type = EventType::kWalletTransferCompleted;
  in.wallet_id = "b";
  in.version = 1;
  in.counterparty_id = "a";
  in.description = std::nullopt;

  CommitBatch batch;
  batch.entries.push_back(entry({created("a"), credited("a", 1, "100")}, "c1", "key-1"));
  batch.entries.push_back(entry({created("b")}, "c2"));
  batch.entries.push_back(entry({out, in}, "c3"));
  batch.wallets = {write("a", "99.7", 2), write("b", "0.3", 1)};
  auto result = store_->commit(batch);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result.value().entry_positions, (std::vector<std::int64_t>{2, 3, 5}));
  EXPECT_EQ(result.value().last_position, 5);
  EXPECT_EQ(store_->last_position().value(), 5);

  auto events = store_->read_events(0, 100);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events.value().size(), 5u);
  const std::vector<Event> expected = {created("a"), credited("a", 1, "100"), created("b"), out, in};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events.value()[i].position, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(events.value()[i].event, expected[i]) << "event " << i;
  }
  EXPECT_EQ(events.value()[0].metadata, (EventMetadata{"c1", "key-1"}));
  EXPECT_EQ(events.value()[2].metadata, (EventMetadata{"c2", std::nullopt}));
}

// More events than a store may append with one statement (the SQLite store: 16), with
// descriptions and metadata that differ from event to event: every one comes back at its position.
TEST_P(StoreSuite, ABatchOfManyEventsRoundTripsEveryEventInOrder) {
  constexpr int kCredits = 36;
  CommitBatch batch;
  std::vector<Event> expected = {created("a")};
  batch.entries.push_back(entry({created("a")}, "c-create"));
  for (int i = 1; i <= kCredits; ++i) {
    Event credit = credited(
        "a", i, std::to_string(i) + ".25",
        i % 3 == 0 ? std::nullopt : std::optional<std::string>("note " + std::to_string(i)));
    expected.push_back(credit);
    batch.entries.push_back(entry({credit}, "c-" + std::to_string(i), "key-" + std::to_string(i)));
  }
  batch.wallets = {write("a", "675.00", kCredits)};  // 1.25 + 2.25 + ... + 36.25
  auto result = store_->commit(batch);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result.value().last_position, kCredits + 1);
  ASSERT_EQ(result.value().entry_positions.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(result.value().entry_positions[i], static_cast<std::int64_t>(i + 1));
  }

  reopen();
  auto events = store_->read_events(0, 100);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events.value().size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events.value()[i].position, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(events.value()[i].event, expected[i]) << "event " << i;
    const std::optional<std::string> key =
        i == 0 ? std::nullopt : std::optional<std::string>("key-" + std::to_string(i));
    EXPECT_EQ(events.value()[i].metadata,
              (EventMetadata{i == 0 ? "c-create" : "c-" + std::to_string(i), key}))
        << "event " << i;
  }
}

// The pipelined pair: write() makes batches part of the log (the next one continues it) before
// any sync; sync() then makes all of them durable. A store without a pipeline commits in write().
TEST_P(StoreSuite, WrittenBatchesContinueEachOtherAndOneSyncMakesThemDurable) {
  CommitBatch first;
  first.entries.push_back(entry({created("a"), credited("a", 1, "5")}, "c", "key-w1"));
  first.wallets = {write("a", "5", 1)};
  auto written = store_->write(first);
  ASSERT_TRUE(written.ok()) << written.error().message;
  EXPECT_EQ(written.value().last_position, 2);
  CommitBatch second;
  second.entries.push_back(entry({credited("a", 2, "1")}, "c", "key-w2"));
  second.wallets = {write("a", "6", 2, 1)};
  written = store_->write(second);
  ASSERT_TRUE(written.ok()) << written.error().message;
  EXPECT_EQ(written.value().last_position, 3);
  ASSERT_TRUE(store_->sync().ok());
  reopen();
  EXPECT_EQ(store_->last_position().value(), 3);
  auto wallets = store_->load_wallets();
  ASSERT_TRUE(wallets.ok());
  ASSERT_EQ(wallets.value().size(), 1u);
  EXPECT_EQ(wallets.value()[0], state("a", "6", 2));
  EXPECT_TRUE(store_->find_idempotency("key-w2").value().has_value());
}

TEST_P(StoreSuite, EverythingSurvivesReopening) {
  CommitBatch batch;
  batch.entries.push_back(entry({created("a"), credited("a", 1, "12.34")}, "c", "key-a"));
  batch.wallets = {write("a", "12.34", 1)};
  ASSERT_TRUE(store_->commit(batch).ok());
  reopen();
  auto wallets = store_->load_wallets();
  ASSERT_TRUE(wallets.ok());
  ASSERT_EQ(wallets.value().size(), 1u);
  EXPECT_EQ(wallets.value()[0], state("a", "12.34", 1));
  EXPECT_EQ(store_->last_position().value(), 2);
  auto record = store_->find_idempotency("key-a");
  ASSERT_TRUE(record.ok());
  ASSERT_TRUE(record.value().has_value());
  EXPECT_EQ(*record.value(), (IdempotencyRecord{"key-a", "fp:key-a", 201, "{\"body\":1}", 2, 5000}));

  // The log continues where it stopped.
  CommitBatch next;
  next.entries.push_back(entry({credited("a", 2, "1")}));
  next.wallets = {write("a", "13.34", 2, 1)};
  auto result = store_->commit(next);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.value().last_position, 3);
}

TEST_P(StoreSuite, IdempotencyRecordWithoutEventsHasPositionZero) {
  CommitBatch batch;
  CommitBatch::Entry rejected;
  rejected.idempotency = IdempotencyRecord{"k", "fp", 400, "{\"code\":\"X\"}", 0, 7};
  batch.entries.push_back(rejected);
  auto result = store_->commit(batch);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.value().entry_positions, (std::vector<std::int64_t>{0}));
  auto record = store_->find_idempotency("k").value();
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->status, 400);
  EXPECT_EQ(record->position, 0);
  EXPECT_EQ(store_->last_position().value(), 0);
}

TEST_P(StoreSuite, ADuplicateVersionFailsTheWholeBatch) {
  CommitBatch first;
  first.entries.push_back(entry({created("a")}));
  first.wallets = {write("a", "0", 0)};
  ASSERT_TRUE(store_->commit(first).ok());

  CommitBatch clash;
  clash.entries.push_back(entry({created("b")}, "c", "key-b"));
  clash.entries.push_back(entry({created("a")}));  // version 0 of "a" exists already
  clash.wallets = {write("b", "0", 0), write("a", "0", 0)};
  auto result = store_->commit(clash);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, StoreErrorKind::kConflict);

  // Nothing of the failed batch is visible, and the next batch gets the next free positions.
  EXPECT_EQ(store_->last_position().value(), 1);
  EXPECT_EQ(store_->load_wallets().value().size(), 1u);
  EXPECT_FALSE(store_->find_idempotency("key-b").value().has_value());
  CommitBatch next;
  next.entries.push_back(entry({created("b")}));
  next.wallets = {write("b", "0", 0)};
  auto ok = store_->commit(next);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value().last_position, 2);
}

TEST_P(StoreSuite, AStaleExpectedVersionFailsTheBatch) {
  CommitBatch first;
  first.entries.push_back(entry({created("a"), credited("a", 1, "5")}));
  first.wallets = {write("a", "5", 1)};
  ASSERT_TRUE(store_->commit(first).ok());
  // A writer that still believes "a" is at version 0 appends version 1 again: a lost update.
  CommitBatch stale;
  stale.entries.push_back(entry({credited("a", 1, "1")}));
  stale.wallets = {write("a", "1", 1, 0)};
  auto result = store_->commit(stale);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, StoreErrorKind::kConflict);
  EXPECT_EQ(store_->load_wallets().value()[0], state("a", "5", 1));
  EXPECT_EQ(store_->last_position().value(), 2);
}

TEST_P(StoreSuite, EventsMustContinueTheWalletsVersions) {
  CommitBatch first;
  first.entries.push_back(entry({created("a")}));
  first.wallets = {write("a", "0", 0)};
  ASSERT_TRUE(store_->commit(first).ok());

  CommitBatch gap;  // skips version 1
  gap.entries.push_back(entry({credited("a", 2, "1")}));
  gap.wallets = {write("a", "1", 2, 0)};
  auto skipped = store_->commit(gap);
  ASSERT_FALSE(skipped.ok());
  EXPECT_EQ(skipped.error().kind, StoreErrorKind::kConflict);

  CommitBatch mismatch;  // the events reach version 1, the write model claims 2
  mismatch.entries.push_back(entry({credited("a", 1, "1")}));
  mismatch.wallets = {write("a", "1", 2, 0)};
  auto wrong = store_->commit(mismatch);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().kind, StoreErrorKind::kConflict);

  CommitBatch unlisted;  // an event of a wallet the batch does not declare
  unlisted.entries.push_back(entry({created("b")}));
  auto undeclared = store_->commit(unlisted);
  ASSERT_FALSE(undeclared.ok());
  EXPECT_EQ(undeclared.error().kind, StoreErrorKind::kConflict);

  EXPECT_EQ(store_->last_position().value(), 1);
  EXPECT_EQ(store_->load_wallets().value().size(), 1u);
}

TEST_P(StoreSuite, ReadsPageThroughTheLog) {
  CommitBatch batch;
  batch.entries.push_back(entry({created("a"), created("b")}));
  for (int v = 1; v <= 5; ++v) batch.entries.push_back(entry({credited("a", v, "1")}));
  batch.wallets = {write("a", "5", 5), write("b", "0", 0)};
  ASSERT_TRUE(store_->commit(batch).ok());

  auto page = store_->read_events(3, 2).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].position, 4);
  EXPECT_EQ(page[1].position, 5);

  auto rest = store_->read_events(5, 100).value();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest.back().position, 7);
  EXPECT_EQ(rest.back().event.version, 5);
  EXPECT_TRUE(store_->read_events(7, 100).value().empty());
}

TEST_P(StoreSuite, PurgeRemovesOnlyOldRecordsAndRespectsTheLimit) {
  CommitBatch batch;
  for (int i = 0; i < 5; ++i) {
    CommitBatch::Entry e;
    e.idempotency = IdempotencyRecord{"old-" + std::to_string(i), "fp", 201, "{}", 0, 100 + i};
    batch.entries.push_back(e);
  }
  CommitBatch::Entry fresh;
  fresh.idempotency = IdempotencyRecord{"fresh", "fp", 201, "{}", 0, 10'000};
  batch.entries.push_back(fresh);
  ASSERT_TRUE(store_->commit(batch).ok());

  EXPECT_EQ(store_->purge_idempotency(1000, 3).value(), 3);
  EXPECT_EQ(store_->purge_idempotency(1000, 100).value(), 2);
  EXPECT_EQ(store_->purge_idempotency(1000, 100).value(), 0);
  EXPECT_FALSE(store_->find_idempotency("old-4").value().has_value());
  EXPECT_TRUE(store_->find_idempotency("fresh").value().has_value());
}

}  // namespace
}  // namespace wallex::testing
