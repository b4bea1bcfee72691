// The pure parts of the consumer-group projectors: message -> event, the de-duplication rule,
// the dead-letter headers.
#include "kafka/consumer_message.h"

#include <gtest/gtest.h>

#include "json/event_message_decoder.h"
#include "kafka/kafka_message.h"
#include "store/event_codec.h"

namespace wallex {
namespace {

LoggedEvent logged(std::int64_t position, Event event, EventMetadata metadata) {
  return logged_event(StoredEvent{position, std::move(event), std::move(metadata)});
}

std::vector<LoggedEvent> one_of_each_type() {
  std::vector<LoggedEvent> events;
  Event created;
  created.type = EventType::kWalletCreated;
  created.wallet_id = "alice";
  created.version = 0;
  created.occurred_at_ms = 1'795'000'000'001;
  created.owner_id = "owner-1";
  events.push_back(logged(1, created, EventMetadata{"corr-1", std::string("key-1")}));
  Event credited = created;
  credited.type = EventType::kWalletCredited;
  credited.version = 1;
  credited.owner_id.clear();
  credited.amount = Money::parse("10.50").value();
  credited.description = "Initial balance";
  events.push_back(logged(2, credited, EventMetadata{"corr-1", std::string("key-1")}));
  Event debited = credited;
  debited.type = EventType::kWalletDebited;
  debited.version = 2;
  debited.description.reset();
  debited.amount = Money::parse("0.50").value();
  events.push_back(logged(3, debited, EventMetadata{"corr-2", std::nullopt}));
  Event out = debited;
  out.type = EventType::kWalletTransferInitiated;
  out.version = 3;
  out.transfer_id = "t-1";
  out.counterparty_id = "bob";
  out.description = "Transfer to wallet bob";
  events.push_back(logged(4, out, EventMetadata{"corr-3", std::string("k\"3")}));
  Event in = out;
  in.type = EventType::kWalletTransferCompleted;
  in.wallet_id = "bob";
  in.version = 7;
  in.counterparty_id = "alice";
  in.description = "Transfer from wallet alice";
  events.push_back(logged(5, in, EventMetadata{"corr-3", std::string("k\"3")}));
  return events;
}

TEST(ConsumerMessageTest, EveryTypeComesBackAsTheLoggedEvent) {
  for (const LoggedEvent& event : one_of_each_type()) {
    const KafkaMessage message = kafka_message_for(event);
    auto back = event_from_message(message.key, message.value);
    ASSERT_TRUE(back.ok()) << back.error();
    // The stored documents byte for byte: the read side copies them.
    EXPECT_EQ(back.value().data_json, event.data_json);
    EXPECT_EQ(back.value().metadata_json, event.metadata_json);
    EXPECT_EQ(static_cast<const StoredEvent&>(back.value()),
              static_cast<const StoredEvent&>(event));
    EXPECT_EQ(back.value().wallet_slot, -1);
  }
}

TEST(ConsumerMessageTest, MalformedValuesAreRefusedWithTheReason) {
  const LoggedEvent event = one_of_each_type()[1];
  const KafkaMessage message = kafka_message_for(event);
  const auto error_of = [](std::string_view key, std::string_view value) {
    auto decoded = event_from_message(key, value);
    EXPECT_FALSE(decoded.ok()) << value;
    return decoded.ok() ? std::string() : decoded.error();
  };
  EXPECT_NE(error_of("alice", "not json").find("not JSON"), std::string::npos);
  EXPECT_NE(error_of("alice", "[1]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("alice", R"({"not":"an event"})").find("position"), std::string::npos);
  EXPECT_NE(error_of("mallory", message.value).find("not the value's aggregateId"),
            std::string::npos);
  std::string moved = message.value;
  moved.replace(moved.find(R"("position":2})"), 13, R"("position":3})");
  EXPECT_NE(error_of("alice", moved).find("metadata.position"), std::string::npos);
  std::string bad_type = message.value;
  bad_type.replace(bad_type.find("WalletCredited"), 14, "WalletRobbed!!");
  EXPECT_NE(error_of("alice", bad_type).find("unknown type"), std::string::npos);
  std::string bad_amount = message.value;
  bad_amount.replace(bad_amount.find("10.50"), 5, "lots!");
  EXPECT_NE(error_of("alice", bad_amount).find("bad amount"), std::string::npos);
  const std::string huge(kEventMessageBytesMax + 1, ' ');
  EXPECT_NE(error_of("alice", huge).find("over the limit"), std::string::npos);
  std::string deep = R"({"position":1,"aggregateId":"a","eventType":"WalletCreated",)"
                     R"("eventVersion":0,"payload":)";
  deep += std::string(20, '[') + std::string(20, ']');
  deep += R"(,"metadata":{}})";
  EXPECT_NE(error_of("a", deep).find("not JSON"), std::string::npos);
}

TEST(ConsumerMessageTest, VersionsAreAppliedInOrderOnceAndGapsAreErrors) {
  EXPECT_EQ(check_version(std::nullopt, 0), VersionCheck::kApply);
  EXPECT_EQ(check_version(std::nullopt, 1), VersionCheck::kGap);
  EXPECT_EQ(check_version(0, 0), VersionCheck::kDuplicate);
  EXPECT_EQ(check_version(0, 1), VersionCheck::kApply);
  EXPECT_EQ(check_version(5, 3), VersionCheck::kDuplicate);
  EXPECT_EQ(check_version(5, 5), VersionCheck::kDuplicate);
  EXPECT_EQ(check_version(5, 6), VersionCheck::kApply);
  EXPECT_EQ(check_version(5, 7), VersionCheck::kGap);
}

TEST(ConsumerMessageTest, DeadLetterHeadersKeepTheOriginalOnesAndSayWhereAndWhy) {
  const std::vector<std::pair<std::string, std::string>> original = {
      {"event-type", "WalletCredited"}, {"dlq-attempts", "99"}, {"position", "2"}};
  DeadLetter letter{"wallet-events", 4, 1234, "ledger-projector", "undecodable message: x", 3};
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"event-type", "WalletCredited"},        {"position", "2"},
      {"dlq-error", "undecodable message: x"}, {"dlq-attempts", "3"},
      {"dlq-origin-topic", "wallet-events"},   {"dlq-origin-partition", "4"},
      {"dlq-origin-offset", "1234"},           {"dlq-group", "ledger-projector"}};
  EXPECT_EQ(dead_letter_headers(original, letter), expected);

  letter.error = std::string(kDeadLetterErrorBytesMax + 500, 'e');
  const auto cut = dead_letter_headers({}, letter);
  ASSERT_EQ(cut.front().first, "dlq-error");
  EXPECT_EQ(cut.front().second.size(), kDeadLetterErrorBytesMax);
}

}  // namespace
}  // namespace wallex
