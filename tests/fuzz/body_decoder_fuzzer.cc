// Fuzzes decode_object_body, the decoder of every request body. Properties, for every input:
// - decoding never crashes, throws, recurses without bound or reads out of bounds;
// - an accepted body has at most kBodyFieldsMax fields, no two with the same key, keys and
//   strings of valid UTF-8, and number text that is a JSON number;
// - re-encoding the accepted fields (scalars as themselves, containers as empty ones) with
//   JsonWriter gives a body that decodes to the same fields: what Wallex writes, it reads back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "json/body_decoder.h"
#include "json/json_writer.h"

namespace {

using wallex::DecodedBody;
using wallex::JsonField;
using wallex::JsonKind;

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code_point = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code_point = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code_point = byte & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kSmallest[length] || code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    i += length;
  }
  return true;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view text) {
  std::size_t pos = 0;
  auto digits = [&] {
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    return pos - start;
  };
  if (pos < text.size() && text[pos] == '-') ++pos;
  const std::size_t int_start = pos;
  const std::size_t int_length = digits();
  if (int_length == 0 || (int_length > 1 && text[int_start] == '0')) return false;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    if (digits() == 0) return false;
  }
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
    if (digits() == 0) return false;
  }
  return pos == text.size();
}

std::string encode(const DecodedBody& body) {
  wallex::JsonWriter out;
  out.begin_object();
  for (const JsonField& field : body.fields) {
    out.key(field.key);
    switch (field.kind) {
      case JsonKind::kNull:
        out.null();
        break;
      case JsonKind::kBool:
        out.boolean(field.text == "true");
        break;
      case JsonKind::kNumber:
        out.number_text(field.text);
        break;
      case JsonKind::kString:
        out.string(field.text);
        break;
      case JsonKind::kObject:
        out.begin_object().end_object();
        break;
      case JsonKind::kArray:
        out.begin_array().end_array();
        break;
    }
  }
  out.end_object();
  return out.take();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto decoded = wallex::decode_object_body(text);
  if (!decoded) {
    FUZZ_CHECK(!decoded.error().message.empty());
    return 0;
  }
  const DecodedBody& body = decoded.value();
  FUZZ_CHECK(body.fields.size() <= wallex::kBodyFieldsMax);
  for (std::size_t i = 0; i < body.fields.size(); ++i) {
    const JsonField& field = body.fields[i];
    FUZZ_CHECK(is_valid_utf8(field.key));
    FUZZ_CHECK(body.find(field.key) == &field);  // the first field with this key is this one
    switch (field.kind) {
      case JsonKind::kString:
        FUZZ_CHECK(is_valid_utf8(field.text));
        break;
      case JsonKind::kNumber:
        FUZZ_CHECK(is_json_number(field.text));
        break;
      case JsonKind::kBool:
        FUZZ_CHECK(field.text == "true" || field.text == "false");
        break;
      case JsonKind::kNull:
      case JsonKind::kObject:
      case JsonKind::kArray:
        FUZZ_CHECK(field.text.empty());
        break;
    }
  }

  const std::string again_text = encode(body);
  auto again = wallex::decode_object_body(again_text);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value().fields.size() == body.fields.size());
  for (std::size_t i = 0; i < body.fields.size(); ++i) {
    const JsonField& before = body.fields[i];
    const JsonField& after = again.value().fields[i];
    FUZZ_CHECK(after.key == before.key);
    FUZZ_CHECK(after.kind == before.kind);
    FUZZ_CHECK(after.text == before.text);
  }
  return 0;
}
