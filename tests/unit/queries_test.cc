// Query parameters, query results (exact JSON, slices, pagination) and the query service's
// minPosition waits.
#include "projection/queries.h"

#include <gtest/gtest.h>

#include <future>
#include <limits>

#include "common/id_generator.h"
#include "common/time_format.h"
#include "json/body_decoder.h"
#include "projection/query_service.h"
#include "projection_fixture.h"
#include "service/reply_encoding.h"
#include "store/sqlite/sqlite_read_store.h"

namespace wallex::testing {
namespace {

QueryParams params(std::initializer_list<std::pair<std::string, std::string>> list) {
  return QueryParams(list);
}

TEST(QueryParsing, Defaults) {
  const auto list = parse_wallet_list_query({});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list.value().limit, 100u);
  EXPECT_EQ(list.value().after, "");
  const auto ledger = parse_ledger_query({}, std::string("w"));
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ(ledger.value().limit, 50u);
  EXPECT_EQ(ledger.value().offset, 0u);
  EXPECT_EQ(parse_min_position({}).value(), 0);
  EXPECT_FALSE(parse_time_travel_query({}, "w").value().has_value());
}

TEST(QueryParsing, InvalidValuesAreRefused) {
  for (const auto& bad :
       {params({{"limit", "0"}}), params({{"limit", "1001"}}), params({{"limit", "-1"}}),
        params({{"limit", "1e2"}}), params({{"limit", ""}}), params({{"limit", " 5"}}),
        params({{"limit", "99999999999999999999999"}}), params({{"limit", "5"}, {"limit", "6"}}),
        params({{"after", "bad id!"}}), params({{"ownerId", ""}})}) {
    EXPECT_FALSE(parse_wallet_list_query(bad).ok());
  }
  for (const auto& bad :
       {params({{"transactionType", "credit"}}), params({{"transactionType", "REFUND"}}),
        params({{"startDate", "yesterday"}}), params({{"endDate", "2026-02-30"}}),
        params({{"startDate", "2026-02-02"}, {"endDate", "2026-02-01"}}),
        params({{"offset", "-3"}}), params({{"offset", "x"}}), params({{"limit", "1001"}}),
        params({{"offset", "100001"}})}) {
    EXPECT_FALSE(parse_ledger_query(bad, std::nullopt).ok());
  }
  EXPECT_FALSE(parse_min_position(params({{"minPosition", "-1"}})).ok());
  EXPECT_FALSE(parse_min_position(params({{"minPosition", "abc"}})).ok());
  EXPECT_FALSE(
      parse_time_travel_query(params({{"atVersion", "1"}, {"at", "2026-01-01"}}), "w").ok());
  EXPECT_FALSE(parse_time_travel_query(params({{"atVersion", "x"}}), "w").ok());
  EXPECT_FALSE(parse_time_travel_query(params({{"at", "soon"}}), "w").ok());
  EXPECT_FALSE(parse_wallet_events_query(params({{"fromVersion", "-1"}}), "w").ok());
}

TEST(QueryParsing, ValidFilters) {
  const auto ledger = parse_ledger_query(params({{"transactionType", "TRANSFER_IN"},
                                                 {"startDate", "2026-01-01"},
                                                 {"endDate", "2026-01-31T23:59:59.999Z"},
                                                 {"limit", "1000"},
                                                 {"offset", "20"},
                                                 {"unknown", "ignored"}}),
                                         std::nullopt);
  ASSERT_TRUE(ledger.ok()) << ledger.error();
  EXPECT_EQ(ledger.value().type, EntryType::kTransferIn);
  EXPECT_EQ(ledger.value().start_ms, parse_iso8601("2026-01-01"));
  EXPECT_EQ(ledger.value().limit, 1000u);
  EXPECT_EQ(ledger.value().offset, 20u);
  EXPECT_TRUE(is_plausible_reference_id("alice:1"));
  EXPECT_TRUE(is_plausible_reference_id("772b96dc-50ac-4765-96f2-e206b7cd16b7"));
  EXPECT_FALSE(is_plausible_reference_id(""));
  EXPECT_FALSE(is_plausible_reference_id("a b"));
}

class QueriesTest : public ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    create("a", "100", "o1");
    create("b", "0", "o2");
    create("c", "5", "o1");
    credit("a", "10.10", std::string("tip"));
    debit("a", "0.10");
    transfer("a", "b", "30", "t-1");
    transfer("c", "a", "5", "t-2");
    catch_up();
  }
  static std::string header(const QueryReply& reply, std::string_view name) {
    for (const auto& [key, value] : reply.headers) {
      if (key == name) return value;
    }
    return "";
  }
  static std::vector<std::string> types(const QueryReply& reply) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = reply.body.find("\"transactionType\":\"", at)) != std::string::npos) {
      at += 19;
      out.push_back(reply.body.substr(at, reply.body.find('"', at) - at));
    }
    return out;
  }
};

TEST_F(QueriesTest, WalletListPagesByIdWithACursor) {
  WalletListQuery query;
  query.limit = 2;
  QueryReply first = run_wallet_list(read_store(), query);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body.front(), '[');
  EXPECT_NE(first.body.find("\"id\":\"a\""), std::string::npos);
  EXPECT_NE(first.body.find("\"id\":\"b\""), std::string::npos);
  EXPECT_EQ(header(first, "X-Next-Cursor"), "b");
  query.after = "b";
  QueryReply second = run_wallet_list(read_store(), query);
  EXPECT_EQ(second.body, "[" + encode_snapshot(wallet("c")) + "]");
  EXPECT_EQ(header(second, "X-Next-Cursor"), "");
  query = WalletListQuery{};
  query.owner_id = "o1";
  EXPECT_EQ(run_wallet_list(read_store(), query).body,
            "[" + encode_snapshot(wallet("a")) + "," + encode_snapshot(wallet("c")) + "]");
}

TEST_F(QueriesTest, LedgerIsNewestFirstWithExactSlices) {
  EntryFilter filter;
  filter.wallet_id = "a";
  QueryReply all = run_ledger(read_store(), filter);
  EXPECT_EQ(all.body.rfind("{\"walletId\":\"a\",\"count\":5,\"transactions\":[", 0), 0u)
      << all.body;
  EXPECT_EQ(types(all),
            (std::vector<std::string>{"TRANSFER_IN", "TRANSFER_OUT", "DEBIT", "CREDIT", "CREDIT"}));
  filter.limit = 2;
  filter.offset = 1;
  EXPECT_EQ(types(run_ledger(read_store(), filter)),
            (std::vector<std::string>{"TRANSFER_OUT", "DEBIT"}));
  filter = EntryFilter{};
  filter.wallet_id = "a";
  filter.type = EntryType::kCredit;
  EXPECT_EQ(types(run_ledger(read_store(), filter)),
            (std::vector<std::string>{"CREDIT", "CREDIT"}));
  filter = EntryFilter{};
  filter.type = EntryType::kTransferIn;
  const QueryReply across = run_ledger(read_store(), filter);
  EXPECT_EQ(across.body.rfind("{\"count\":2,", 0), 0u) << across.body;
  // A date window that holds exactly the debit (each command is 7 ms after the previous one).
  const TimestampMs debit_ms = wallet("b").created_at_ms + 3 * 7;
  filter = EntryFilter{};
  filter.start_ms = debit_ms;
  filter.end_ms = debit_ms;
  EXPECT_EQ(types(run_ledger(read_store(), filter)), (std::vector<std::string>{"DEBIT"}));
  filter.wallet_id = "unknown";
  EXPECT_EQ(run_ledger(read_store(), filter).body,
            "{\"walletId\":\"unknown\",\"count\":0,\"transactions\":[]}");
}

TEST_F(QueriesTest, EntryJsonHasTheOriginalsKeysAndExactDecimals) {
  EntryFilter filter;
  filter.wallet_id = "a";
  filter.type = EntryType::kCredit;
  filter.limit = 1;
  const LedgerEntry entry = read_store().find_entries(filter).value().at(0);
  const std::string json = encode_entry(entry);
  auto decoded = decode_object_body(json);
  ASSERT_TRUE(decoded.ok());
  std::vector<std::string> keys;
  for (const JsonField& field : decoded.value().fields) keys.push_back(field.key);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"id", "walletId", "transactionType", "amount",
                                      "balanceBefore", "balanceAfter", "description", "referenceId",
                                      "relatedWalletId", "metadata", "createdAt"}));
  EXPECT_NE(
      json.find("\"amount\":\"10.10\",\"balanceBefore\":\"100.00\",\"balanceAfter\":\"110.10\""),
      std::string::npos)
      << json;
  EXPECT_NE(json.find("\"description\":\"tip\",\"referenceId\":\"a:2\",\"relatedWalletId\":null"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"metadata\":{\"occurredAt\":"), std::string::npos) << json;
}

TEST_F(QueriesTest, SummaryTotalsAreExact) {
  const QueryReply summary = run_ledger_summary(read_store(), "a");
  // credits: 100 + 10.10 + 5 (in); debits: 0.10 + 30 (out)
  EXPECT_EQ(summary.body.rfind("{\"walletId\":\"a\",\"totalCredits\":115.1,\"totalDebits\":30.1,"
                               "\"transactionCount\":5,\"lastTransaction\":{",
                               0),
            0u)
      << summary.body;
  EXPECT_NE(summary.body.find("\"referenceId\":\"t-2\""), std::string::npos);
  EXPECT_EQ(
      run_ledger_summary(read_store(), "nobody").body,
      "{\"walletId\":\"nobody\",\"totalCredits\":0,\"totalDebits\":0,\"transactionCount\":0}");
}

TEST_F(QueriesTest, AReferenceFindsBothHalvesOfATransfer) {
  const QueryReply reply = run_ledger_reference(read_store(), "t-1");
  EXPECT_EQ(reply.body.rfind("{\"referenceId\":\"t-1\",\"count\":2,", 0), 0u) << reply.body;
  EXPECT_EQ(types(reply), (std::vector<std::string>{"TRANSFER_IN", "TRANSFER_OUT"}));
  EXPECT_EQ(run_ledger_reference(read_store(), "a:1")
                .body.rfind("{\"referenceId\":\"a:1\",\"count\":1,", 0),
            0u);
  EXPECT_EQ(run_ledger_reference(read_store(), "zzz").body,
            "{\"referenceId\":\"zzz\",\"count\":0,\"transactions\":[]}");
}

// The reference index's key (a lookup then compares the id itself, so only order matters).
TEST(ReferenceKey, FollowsTransfersInTimeAndGroupsCreditsByVersion) {
  RandomIdGenerator ids(3);
  std::int64_t previous = std::numeric_limits<std::int64_t>::min();
  for (TimestampMs ms = 1'795'700'000'000; ms < 1'795'700'000'050; ++ms) {
    const std::int64_t key = reference_hash(ids.next_time_ordered_uuid(ms));
    EXPECT_GT(key, previous) << ms;
    EXPECT_EQ(key >> 16, ms) << "the first 48 bits are the time";
    previous = key;
  }
  // Credits and debits: the version above the wallet's hash. A wallet's versions in order, and
  // every wallet's entry of one version in one run, before any of the next version.
  const std::int64_t v1 = reference_hash("wallet-7:1");
  EXPECT_LT(v1, reference_hash("wallet-7:2"));
  EXPECT_LT(reference_hash("wallet-7:2"), reference_hash("wallet-7:10"));
  EXPECT_EQ(reference_hash("wallet-7:10") - v1, std::int64_t{9} << 32);
  EXPECT_EQ(reference_hash("a:b:12") - reference_hash("a:b:2"), std::int64_t{10} << 32)
      << "the last colon counts";
  EXPECT_NE(reference_hash("wallet-8:1"), v1);
  for (int wallet = 0; wallet < 50; ++wallet) {
    const std::string id = "w" + std::to_string(wallet);
    EXPECT_EQ(reference_hash(id + ":5") >> 32, 5) << id;
    EXPECT_LT(reference_hash(id + ":5"), reference_hash("wallet-7:6")) << id;
    EXPECT_GT(reference_hash(id + ":5"), reference_hash("wallet-7:4")) << id;
  }
  // Anything else (random transfer ids of older versions, odd texts): FNV-1a, 64 bits.
  EXPECT_EQ(static_cast<std::uint64_t>(reference_hash("a")), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(static_cast<std::uint64_t>(reference_hash("772b96dc-50ac-4765-96f2-e206b7cd16b7")),
            static_cast<std::uint64_t>(reference_hash("772b96dc-50ac-4765-96f2-e206b7cd16b7")));
  EXPECT_NE(reference_hash("wallet-7:"), reference_hash("wallet-7:0"));
  EXPECT_NE(reference_hash("wallet-7:x1"), reference_hash("wallet-7:1"));
}

TEST_F(QueriesTest, WalletEventsPageByVersion) {
  WalletEventsQuery query{"a", 0, 2};
  const QueryReply first = run_wallet_events(read_store(), query);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(
      first.body.rfind("{\"walletId\":\"a\",\"count\":2,\"events\":[{\"position\":1,\"version\":0,"
                       "\"type\":\"WalletCreated\",\"data\":{\"ownerId\":\"o1\"},\"metadata\":{",
                       0),
      0u)
      << first.body;
  EXPECT_EQ(header(first, "X-Next-Cursor"), "2");
  query.from_version = 5;
  const QueryReply last = run_wallet_events(read_store(), query);
  EXPECT_NE(last.body.find("\"count\":1"), std::string::npos);
  EXPECT_NE(last.body.find("WalletTransferCompleted"), std::string::npos);
  EXPECT_EQ(header(last, "X-Next-Cursor"), "");
  query.from_version = 50;
  EXPECT_EQ(run_wallet_events(read_store(), query).body,
            "{\"walletId\":\"a\",\"count\":0,\"events\":[]}");
  EXPECT_EQ(run_wallet_events(read_store(), WalletEventsQuery{"nobody", 0, 10}).status, 404);
}

TEST_F(QueriesTest, TimeTravelReturnsEarlierSnapshots) {
  WalletState at_one = wallet("a");
  at_one.balance = money("100");
  at_one.version = 1;
  at_one.updated_at_ms = at_one.created_at_ms;
  EXPECT_EQ(run_time_travel(read_store(), TimeTravelQuery{"a", 1, std::nullopt}).body,
            encode_snapshot(at_one));
  EXPECT_EQ(run_time_travel(read_store(), TimeTravelQuery{"a", 5, std::nullopt}).body,
            encode_snapshot(wallet("a")));
  EXPECT_EQ(run_time_travel(read_store(), TimeTravelQuery{"a", 6, std::nullopt}).status, 404);
  EXPECT_EQ(run_time_travel(read_store(), TimeTravelQuery{"x", 0, std::nullopt}).status, 404);
  // By time: just before the credit, the wallet held its initial balance.
  const TimestampMs credit_ms = wallet("a").created_at_ms + 3 * 7;
  EXPECT_EQ(run_time_travel(read_store(), TimeTravelQuery{"a", std::nullopt, credit_ms - 1}).body,
            encode_snapshot(at_one));
  EXPECT_EQ(
      run_time_travel(read_store(), TimeTravelQuery{"a", std::nullopt, credit_ms + 1'000'000}).body,
      encode_snapshot(wallet("a")));
  const QueryReply before = run_time_travel(read_store(), TimeTravelQuery{"a", std::nullopt, 0});
  EXPECT_EQ(before.status, 404);
  EXPECT_NE(before.body.find("did not exist at 1970-01-01T00:00:00.000Z"), std::string::npos);
}

// ------------------------------------------------------------------------------- query service

class QueryServiceTest : public ProjectionFixture {
 protected:
  void SetUp() override {
    ProjectionFixture::SetUp();
    auto store = SqliteReadStore::open(dir_, SqliteReadStore::Access::kReadWrite);
    ASSERT_TRUE(store.ok());
    QueryOptions options;
    options.wait_max_ms = 300;
    options.queue_length_max = 3;
    service_ = std::make_unique<QueryService>(
        std::move(store).value(), [this](ProjectorId) { return reached_.load(); }, options);
    service_->start();
  }
  void TearDown() override {
    service_.reset();
    ProjectionFixture::TearDown();
  }
  std::future<QueryReply> submit(std::int64_t min_position) {
    auto promise = std::make_shared<std::promise<QueryReply>>();
    auto future = promise->get_future();
    service_->submit(
        ProjectorId::kLedger, min_position,
        [](ReadStore&) {
          QueryReply reply;
          reply.body = "ran";
          return reply;
        },
        [promise](QueryReply&& reply) { promise->set_value(std::move(reply)); });
    return future;
  }

  std::atomic<std::int64_t> reached_{5};
  std::unique_ptr<QueryService> service_;
};

TEST_F(QueryServiceTest, RunsAtOnceWhenThePositionIsReached) {
  const QueryReply reply = submit(5).get();
  EXPECT_EQ(reply.body, "ran");
  ASSERT_FALSE(reply.headers.empty());
  EXPECT_EQ(reply.headers.back(), (std::pair<std::string, std::string>{"X-Wallex-Position", "5"}));
}

TEST_F(QueryServiceTest, WaitsForTheProjectionWithoutBlockingTheCaller) {
  auto waiting = submit(8);
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  reached_ = 8;
  service_->notify_progress();
  const QueryReply reply = waiting.get();
  EXPECT_EQ(reply.body, "ran");
}

TEST_F(QueryServiceTest, GivesUpAfterTheWaitWith503) {
  const auto started = std::chrono::steady_clock::now();
  const QueryReply reply = submit(100).get();
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(250));
  EXPECT_EQ(reply.status, 503);
  EXPECT_NE(reply.body.find("PROJECTION_BEHIND"), std::string::npos);
  EXPECT_EQ(reply.headers.front(), (std::pair<std::string, std::string>{"Retry-After", "1"}));
}

TEST_F(QueryServiceTest, IsBounded) {
  std::vector<std::future<QueryReply>> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(submit(100));
  const QueryReply refused = submit(100).get();
  EXPECT_EQ(refused.status, 503);
  EXPECT_NE(refused.body.find("OVERLOADED"), std::string::npos);
  service_->stop();  // answers the waiting ones
  for (auto& f : waiting) EXPECT_EQ(f.get().status, 503);
}

}  // namespace
}  // namespace wallex::testing
