#include "bench/replies.h"

#include <gtest/gtest.h>

#include "bench/json_fields.h"

namespace wallex::bench {
namespace {

constexpr std::string_view kSnapshot =
    R"({"id":"w1","ownerId":"o1","balance":130.5,"version":3,)"
    R"("createdAt":"2026-11-25T21:58:26.121Z","updatedAt":"2026-11-25T21:58:26.137Z"})";

TEST(JsonFields, FlattensNestedValuesKeepingNumberText) {
  auto fields =
      JsonFields::parse(R"({"a":{"b":[1,2.50,"x\u00e9\n"],"c":null},"d":true,"e":-0.1e2})");
  ASSERT_TRUE(fields.ok()) << fields.error();
  ASSERT_NE(fields.value().find("a.b.1"), nullptr);
  EXPECT_EQ(fields.value().find("a.b.1")->text, "2.50");
  EXPECT_EQ(fields.value().find("a.b.2")->text, "x\xc3\xa9\n");
  EXPECT_EQ(fields.value().find("a.c")->kind, JsonScalarKind::kNull);
  EXPECT_EQ(fields.value().find("d")->text, "true");
  EXPECT_EQ(fields.value().find("e")->text, "-0.1e2");
  EXPECT_EQ(fields.value().find("a"), nullptr);
}

TEST(JsonFields, DecodesStringsWithEscapesBetweenPlainRuns) {
  auto fields = JsonFields::parse(R"({"plain":"walletId-0001","mixed":"ab\"cd\\ef\/g\t","":"x"})");
  ASSERT_TRUE(fields.ok()) << fields.error();
  EXPECT_EQ(fields.value().find("plain")->text, "walletId-0001");
  EXPECT_EQ(fields.value().find("mixed")->text, "ab\"cd\\ef/g\t");
  EXPECT_EQ(fields.value().find("")->text, "x");
}

TEST(JsonFields, RejectsInvalidJson) {
  for (std::string_view bad : {"", "{", R"({"a":})", R"({"a":01})", R"({"a":1,})", R"({"a":1} x)",
                               R"({"a":"\ud800"})", R"({a:1})", "[1.]", "tru", R"({"a":"x)",
                               "{\"a\":\"x\ny\"}", R"({"a":"x\)", R"({"a":"x\q"})"}) {
    EXPECT_FALSE(JsonFields::parse(bad).ok()) << bad;
  }
  std::string deep(kJsonDepthMax + 2, '[');
  deep += std::string(kJsonDepthMax + 2, ']');
  EXPECT_FALSE(JsonFields::parse(deep).ok());
}

TEST(JsonFields, ParsesAgainIntoTheSameObject) {
  JsonFields fields;
  ASSERT_TRUE(fields.parse_into(R"({"a":"long enough to leave the small-string buffer","b":[1,2,3]})")
                  .ok());
  EXPECT_EQ(fields.scalars().size(), 4u);
  // Fewer scalars the second time: none of the first text's may remain.
  ASSERT_TRUE(fields.parse_into(R"({"b":"x"})").ok());
  ASSERT_EQ(fields.scalars().size(), 1u);
  EXPECT_EQ(fields.scalars()[0].path, "b");
  EXPECT_EQ(fields.scalars()[0].text, "x");
  EXPECT_EQ(fields.find("a"), nullptr);
  EXPECT_EQ(fields.find("b.0"), nullptr);
  // A failed parse leaves nothing to find, even what it read before the error.
  EXPECT_FALSE(fields.parse_into(R"({"c":1,"d":})").ok());
  EXPECT_TRUE(fields.scalars().empty());
  EXPECT_EQ(fields.find("c"), nullptr);
  ASSERT_TRUE(fields.parse_into(R"({"n":{"k":-2.5e1}})").ok());
  ASSERT_NE(fields.find("n", "k"), nullptr);
  EXPECT_EQ(fields.find("n", "k")->text, "-2.5e1");
  EXPECT_EQ(fields.find("", "n.k"), fields.find("n.k"));
  EXPECT_EQ(fields.find("n", "kk"), nullptr);
  EXPECT_EQ(fields.find("nn", "k"), nullptr);
}

TEST(Replies, OneDecoderForEveryKindOfReply) {
  ReplyDecoder decoder;
  const std::string transfer = R"({"fromWallet":)" + std::string(kSnapshot) +
                               R"(,"toWallet":{"id":"w2","ownerId":"o1","balance":0.3,"version":1,)"
                               R"("createdAt":"a","updatedAt":"b"},"transferId":"t-1"})";
  for (int round = 0; round < 2; ++round) {
    auto reply = decoder.transfer_reply(transfer);
    ASSERT_TRUE(reply.ok()) << reply.error();
    EXPECT_EQ(reply.value().from.balance, Money::from_minor(13'050));
    EXPECT_EQ(reply.value().to.id, "w2");
    // A snapshot after a transfer reply: the transfer's nested keys must not count.
    auto snapshot = decoder.wallet_snapshot(kSnapshot);
    ASSERT_TRUE(snapshot.ok()) << snapshot.error();
    EXPECT_EQ(snapshot.value().version, 3);
    EXPECT_FALSE(decoder.transfer_reply(kSnapshot).ok());
    EXPECT_FALSE(decoder.wallet_snapshot("{").ok());
    EXPECT_EQ(decoder.error_code(R"({"statusCode":404,"code":"WALLET_NOT_FOUND"})"),
              "WALLET_NOT_FOUND");
    EXPECT_EQ(decoder.error_code(R"({"statusCode":404})"), "");
  }
}

TEST(Replies, DecodesWalletSnapshot) {
  auto snapshot = decode_wallet_snapshot(kSnapshot);
  ASSERT_TRUE(snapshot.ok()) << snapshot.error();
  EXPECT_EQ(snapshot.value().id, "w1");
  EXPECT_EQ(snapshot.value().balance, Money::from_minor(13'050));
  EXPECT_EQ(snapshot.value().version, 3);
}

TEST(Replies, SnapshotMustKeepTheContract) {
  for (
      std::string_view bad : {
          R"({"id":"w1","ownerId":"o1","balance":"130.5","version":3,"createdAt":"x","updatedAt":"y"})",
          R"({"id":"w1","ownerId":"o1","balance":130.555,"version":3,"createdAt":"x","updatedAt":"y"})",
          R"({"id":"w1","ownerId":"o1","balance":1,"version":3.5,"createdAt":"x","updatedAt":"y"})",
          R"({"id":"w1","ownerId":"o1","balance":1,"version":-1,"createdAt":"x","updatedAt":"y"})",
          R"({"id":"w1","ownerId":"o1","balance":1,"version":1,"createdAt":"x"})",
          R"({"id":"w1","ownerId":"o1","balance":1,"version":1,"createdAt":"x","updatedAt":"y","extra":1})",
      }) {
    EXPECT_FALSE(decode_wallet_snapshot(bad).ok()) << bad;
  }
}

TEST(Replies, DecodesTransferReply) {
  const std::string body = R"({"fromWallet":)" + std::string(kSnapshot) +
                           R"(,"toWallet":{"id":"w2","ownerId":"o1","balance":0.3,"version":1,)"
                           R"("createdAt":"a","updatedAt":"b"},"transferId":"t-1"})";
  auto reply = decode_transfer_reply(body);
  ASSERT_TRUE(reply.ok()) << reply.error();
  EXPECT_EQ(reply.value().from.id, "w1");
  EXPECT_EQ(reply.value().to.balance, Money::from_minor(30));
  EXPECT_EQ(reply.value().to.version, 1);
  EXPECT_EQ(reply.value().transfer_id, "t-1");
  EXPECT_FALSE(decode_transfer_reply(kSnapshot).ok());
}

TEST(Replies, ErrorCode) {
  EXPECT_EQ(
      error_code_of(
          R"({"statusCode":400,"message":"m","error":"Bad Request","code":"INSUFFICIENT_FUNDS"})"),
      "INSUFFICIENT_FUNDS");
  EXPECT_EQ(error_code_of("not json"), "");
  EXPECT_EQ(error_code_of(R"({"code":5})"), "");
}

}  // namespace
}  // namespace wallex::bench
