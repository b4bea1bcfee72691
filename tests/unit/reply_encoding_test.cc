#include "service/reply_encoding.h"

#include <gtest/gtest.h>

#include "json/json_writer.h"

namespace wallex {
namespace {

TEST(JsonString, EscapesQuotesBackslashesAndControlCharactersAndKeepsTheRest) {
  const auto quoted = [](std::string_view text) {
    std::string out = "x";
    append_json_string(out, text);
    return out;
  };
  EXPECT_EQ(quoted(""), "x\"\"");
  EXPECT_EQ(quoted("plain text 123"), "x\"plain text 123\"");
  EXPECT_EQ(quoted("a\"b\\c"), "x\"a\\\"b\\\\c\"");
  EXPECT_EQ(quoted("\n\r\t\b\f"), "x\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(quoted(std::string("\x01z\x1f", 3)), "x\"\\u0001z\\u001f\"");
  EXPECT_EQ(quoted("\"start and end\""), "x\"\\\"start and end\\\"\"");
  EXPECT_EQ(quoted("ünïcode ✓"), "x\"ünïcode ✓\"");  // UTF-8 passes through
}

TEST(ReplyEncoding, SnapshotHasExactlyTheContractKeysInOrder) {
  const WalletState wallet{"w-1", "o\"1", Money::from_minor(13050), 3, 0, 1'764'107'141'123};
  EXPECT_EQ(encode_snapshot(wallet),
            R"({"id":"w-1","ownerId":"o\"1","balance":130.5,"version":3,)"
            R"("createdAt":"1970-01-01T00:00:00.000Z","updatedAt":"2025-11-25T21:45:41.123Z"})");
}

TEST(ReplyEncoding, ErrorBodyCarriesStatusReasonAndCode) {
  EXPECT_EQ(encode_error(ErrorCode::kInsufficientFunds, "no"),
            R"({"statusCode":400,"message":"no","error":"Bad Request","code":"INSUFFICIENT_FUNDS"})");
  EXPECT_EQ(encode_error(ErrorCode::kIdempotencyKeyReused, "x"),
            R"({"statusCode":409,"message":"x","error":"Conflict","code":"IDEMPOTENCY_KEY_REUSED"})");
}

TEST(ReplyEncoding, FingerprintsSeparateEveryField) {
  const Money one = Money::from_minor(100);
  EXPECT_EQ(fingerprint(CreditWallet{"a", one, {}}), fingerprint(CreditWallet{"a", one, {}}));
  EXPECT_NE(fingerprint(CreditWallet{"a", one, {}}), fingerprint(DebitWallet{"a", one, {}}));
  EXPECT_NE(fingerprint(CreditWallet{"a", one, {}}), fingerprint(CreditWallet{"b", one, {}}));
  EXPECT_NE(fingerprint(CreditWallet{"a", one, {}}),
            fingerprint(CreditWallet{"a", Money::from_minor(101), {}}));
  EXPECT_NE(fingerprint(CreditWallet{"a", one, {}}), fingerprint(CreditWallet{"a", one, ""}));
  EXPECT_NE(fingerprint(CreateWallet{"a", "bc", one}), fingerprint(CreateWallet{"ab", "c", one}));
  // The invented transfer id is not part of what the client asked for.
  EXPECT_EQ(fingerprint(TransferMoney{"a", "b", one, {}, "t1"}),
            fingerprint(TransferMoney{"a", "b", one, {}, "t2"}));
}

}  // namespace
}  // namespace wallex
