#include "json/body_decoder.h"

#include <gtest/gtest.h>

#include <string>

namespace wallex {
namespace {

TEST(BodyDecoder, KeepsExactNumberText) {
  auto body = decode_object_body(R"({"amount": 0.30000000000000004, "big": 1e400, "n": -7})");
  ASSERT_TRUE(body.ok()) << body.error().message;
  EXPECT_EQ(body.value().find("amount")->text, "0.30000000000000004");
  EXPECT_EQ(body.value().find("amount")->kind, JsonKind::kNumber);
  EXPECT_EQ(body.value().find("n")->text, "-7");
}

TEST(BodyDecoder, RecordsKindsOfTopLevelFields) {
  auto body = decode_object_body(R"({"s":"x\u00e9\n","t":true,"z":null,"o":{"a":[1,2]},"a":[{}]})");
  ASSERT_TRUE(body.ok()) << body.error().message;
  const DecodedBody& b = body.value();
  EXPECT_EQ(b.find("s")->kind, JsonKind::kString);
  EXPECT_EQ(b.find("s")->text, "x\xc3\xa9\n");
  EXPECT_EQ(b.find("t")->kind, JsonKind::kBool);
  EXPECT_EQ(b.find("z")->kind, JsonKind::kNull);
  EXPECT_EQ(b.find("o")->kind, JsonKind::kObject);
  EXPECT_EQ(b.find("a")->kind, JsonKind::kArray);
  EXPECT_EQ(b.fields.size(), 5u);
  EXPECT_EQ(b.find("missing"), nullptr);
}

TEST(BodyDecoder, RejectsNonObjects) {
  for (const char* text : {"[]", "\"x\"", "1", "null", "true"}) {
    auto body = decode_object_body(text);
    ASSERT_FALSE(body.ok()) << text;
    EXPECT_EQ(body.error().error, BodyDecodeError::kNotAnObject) << text;
  }
}

TEST(BodyDecoder, RejectsMalformedJson) {
  for (const char* text : {"", "{", "{\"a\":}", "{\"a\":NaN}", "{\"a\":1,}", "{'a':1}",
                           "{\"a\":1}{}", "{\"a\":\"\xff\"}", "{\"a\":01}"}) {
    auto body = decode_object_body(text);
    ASSERT_FALSE(body.ok()) << text;
    EXPECT_EQ(body.error().error, BodyDecodeError::kInvalidJson) << text;
  }
}

TEST(BodyDecoder, RejectsDuplicateKeys) {
  auto body = decode_object_body(R"({"amount":1,"amount":2})");
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().error, BodyDecodeError::kDuplicateKey);
  // The same key inside a nested object is not a duplicate of the top-level one.
  EXPECT_TRUE(decode_object_body(R"({"a":{"a":1}})").ok());
}

TEST(BodyDecoder, LimitsDepthAndFieldCount) {
  std::string deep = R"({"a":)";
  for (std::size_t i = 0; i < kBodyDepthMax; ++i) deep += "[";
  for (std::size_t i = 0; i < kBodyDepthMax; ++i) deep += "]";
  deep += "}";
  auto too_deep = decode_object_body(deep);
  ASSERT_FALSE(too_deep.ok());
  EXPECT_EQ(too_deep.error().error, BodyDecodeError::kTooDeep);

  std::string wide = "{";
  for (std::size_t i = 0; i <= kBodyFieldsMax; ++i) {
    wide += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":1";
  }
  wide += "}";
  auto too_wide = decode_object_body(wide);
  ASSERT_FALSE(too_wide.ok());
  EXPECT_EQ(too_wide.error().error, BodyDecodeError::kTooManyFields);
}

}  // namespace
}  // namespace wallex
