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

// The escaping looks at eight bytes at a time: any byte value at any place of strings around that
// size is escaped as one byte at a time would.
TEST(JsonString, EveryByteAtEveryPlaceIsEscapedAsOneByteAtATimeWould) {
  const auto one_at_a_time = [](std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u >= 0x20) {
        out += c;
      } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
        out += c == '\n'   ? "\\n"
               : c == '\r' ? "\\r"
               : c == '\t' ? "\\t"
               : c == '\b' ? "\\b"
                           : "\\f";
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 0xf];
      }
    }
    return out + "\"";
  };
  for (std::size_t size = 1; size <= 24; ++size) {
    for (std::size_t at = 0; at < size; ++at) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string text(size, 'a');
        text[at] = static_cast<char>(byte);
        if (at + 1 < size) text[size - 1] = '"';  // a second one to escape in the same string
        std::string out;
        append_json_string(out, text);
        ASSERT_EQ(out, one_at_a_time(text)) << "size " << size << ", byte " << byte << " at " << at;
      }
    }
  }
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

// The wallets as a replay finds them: moved on since the stored command (other balance, version
// and update time), with the ids, owners and creation times that never change.
class StoredReplyTest : public ::testing::Test {
 protected:
  const WalletState from_then{"w-1", "o\"1", Money::from_minor(13050), 3, 1'000, 1'764'107'141'123};
  const WalletState to_then{"w-2", "owner-2", Money::from_minor(7), 1, 2'000, 1'764'107'141'123};
  WalletState from_now = moved(from_then);
  WalletState to_now = moved(to_then);
  const WalletLookup lookup = [this](std::string_view id) -> const WalletState* {
    if (id == from_now.id) return &from_now;
    if (id == to_now.id) return &to_now;
    return nullptr;
  };
  static WalletState moved(WalletState wallet) {
    wallet.balance = Money::from_minor(wallet.balance.minor() + 99'999);
    wallet.version += 5;
    wallet.updated_at_ms += 60'000;
    return wallet;
  }
};

TEST_F(StoredReplyTest, ASnapshotReplaysByteForByteFromItsChangingValues) {
  const std::string stored = stored_snapshot(from_then);
  EXPECT_EQ(stored, "s|13050|3|1764107141123");
  const std::string original = encode_snapshot(from_then);
  EXPECT_LT(stored.size() * 4, original.size());
  for (const Command& command : {Command{CreditWallet{"w-1", Money::from_minor(1), {}}},
                                 Command{DebitWallet{"w-1", Money::from_minor(1), "d"}},
                                 Command{CreateWallet{"w-1", "o\"1", Money::from_minor(13050)}}}) {
    EXPECT_EQ(replay_body(stored, command, lookup), original);
  }
}

TEST_F(StoredReplyTest, ATransferReplaysByteForByteWithItsId) {
  const std::string id = "01890a5d-ac96-774b-bcce-b302099a8057";
  const std::string stored = stored_transfer(from_then, to_then, id);
  EXPECT_EQ(stored, "t|13050|3|1764107141123|7|1|1764107141123|" + id);
  const std::string original = encode_transfer(from_then, to_then, id);
  EXPECT_EQ(
      replay_body(stored, TransferMoney{"w-1", "w-2", Money::from_minor(5), {}, "other"}, lookup),
      original);
}

TEST_F(StoredReplyTest, JsonBodiesReplayAsTheyAre) {
  // Errors, and every record written before the compact form.
  for (const std::string& json :
       {encode_error(ErrorCode::kInsufficientFunds, "no"), encode_snapshot(from_then),
        encode_transfer(from_then, to_then, "t")}) {
    EXPECT_EQ(replay_body(json, CreditWallet{"nobody", Money::from_minor(1), {}}, lookup), json);
  }
}

TEST_F(StoredReplyTest, WhatCannotBeRebuiltIsNoReply) {
  const Command credit = CreditWallet{"w-1", Money::from_minor(1), {}};
  const Command transfer = TransferMoney{"w-1", "w-2", Money::from_minor(5), {}, "x"};
  for (const std::string_view broken :
       {"s|1|2", "s|1|2|3|4", "s|a|2|3", "s|-1|2|3", "s||2|3", "x|1|2|3", "t|1|2|3|4|5|6|"}) {
    EXPECT_FALSE(replay_body(broken, broken.front() == 't' ? transfer : credit, lookup)) << broken;
  }
  // A snapshot for a transfer, a transfer for a credit, a wallet that no longer exists.
  EXPECT_FALSE(replay_body(stored_snapshot(from_then), transfer, lookup));
  EXPECT_FALSE(replay_body(stored_transfer(from_then, to_then, "x"), credit, lookup));
  EXPECT_FALSE(replay_body(stored_snapshot(from_then),
                           CreditWallet{"gone", Money::from_minor(1), {}}, lookup));
  EXPECT_FALSE(replay_body(stored_transfer(from_then, to_then, "x"),
                           TransferMoney{"w-1", "gone", Money::from_minor(5), {}, "x"}, lookup));
}

}  // namespace
}  // namespace wallex
