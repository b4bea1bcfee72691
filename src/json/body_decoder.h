// Decodes a request body that must be one JSON object into its top-level fields, keeping the
// exact text of numbers (money is converted from decimal text, never through a double).
//
// Enforced limits: nesting depth <= kBodyDepthMax, at most kBodyFieldsMax top-level fields,
// strings must be valid UTF-8, and a key may appear only once (duplicate keys are ambiguous:
// parsers disagree on which one wins, so Wallex refuses them).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace wallex {

inline constexpr std::size_t kBodyDepthMax = 16;
inline constexpr std::size_t kBodyFieldsMax = 32;

enum class JsonKind { kNull, kBool, kNumber, kString, kObject, kArray };

std::string_view json_kind_name(JsonKind kind);

struct JsonField {
  std::string key;
  JsonKind kind = JsonKind::kNull;
  std::string text;  // decoded string, or the exact number text, or "true"/"false"
};

struct DecodedBody {
  std::vector<JsonField> fields;
  const JsonField* find(std::string_view key) const;
};

enum class BodyDecodeError { kInvalidJson, kNotAnObject, kDuplicateKey, kTooManyFields, kTooDeep };

struct BodyDecodeFailure {
  BodyDecodeError error;
  std::string message;
};

Result<DecodedBody, BodyDecodeFailure> decode_object_body(std::string_view body);

}  // namespace wallex
