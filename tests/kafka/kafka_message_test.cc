#include "kafka/kafka_message.h"

#include <gtest/gtest.h>

#include "store/event_codec.h"

namespace wallex {
namespace {

LoggedEvent logged(std::int64_t position, Event event, EventMetadata metadata) {
  return logged_event(StoredEvent{position, std::move(event), std::move(metadata)});
}

TEST(KafkaMessageTest, ACreditWithAnIdempotencyKey) {
  Event event;
  event.type = EventType::kWalletCredited;
  event.wallet_id = "alice";
  event.version = 3;
  event.occurred_at_ms = 1'795'000'000'123;
  event.amount = Money::parse("10.50").value();
  event.description = "tip";
  const KafkaMessage message =
      kafka_message_for(logged(291, event, EventMetadata{"corr-1", std::string("key-1")}));
  EXPECT_EQ(message.key, "alice");
  EXPECT_EQ(message.value,
            R"({"id":"00000000-0000-8000-8000-000000000123","position":291,"aggregateId":"alice",)"
            R"("eventType":"WalletCredited","eventVersion":3,)"
            R"("payload":{"amount":"10.50","description":"tip"},)"
            R"("metadata":{"occurredAt":"2026-11-18T11:06:40.123Z","correlationId":"corr-1",)"
            R"("causationId":"key-1","position":291},"createdAt":"2026-11-18T11:06:40.123Z"})");
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"event-type", "WalletCredited"},
      {"aggregate-id", "alice"},
      {"position", "291"},
      {"correlation-id", "corr-1"},
      {"causation-id", "key-1"}};
  EXPECT_EQ(message.headers, headers);
}

TEST(KafkaMessageTest, WithoutAnIdempotencyKeyThereIsNoCausationHeader) {
  Event event;
  event.type = EventType::kWalletTransferInitiated;
  event.wallet_id = "bob";
  event.version = 1;
  event.occurred_at_ms = 0;
  event.amount = Money::parse("2").value();
  event.description = "Transfer to wallet carol";
  event.transfer_id = "t-1";
  event.counterparty_id = "carol";
  const KafkaMessage message =
      kafka_message_for(logged(7, event, EventMetadata{"c", std::nullopt}));
  EXPECT_EQ(message.key, "bob");
  EXPECT_NE(message.value.find(R"("payload":{"transferId":"t-1","toWalletId":"carol",)"
                               R"("amount":"2.00","description":"Transfer to wallet carol"})"),
            std::string::npos)
      << message.value;
  EXPECT_NE(message.value.find(R"("causationId":null,"position":7})"), std::string::npos)
      << message.value;
  ASSERT_EQ(message.headers.size(), 4u);
  EXPECT_EQ(message.headers.back(), (std::pair<std::string, std::string>{"correlation-id", "c"}));
}

}  // namespace
}  // namespace wallex
