#include "json/body_decoder.h"

#include <boost/json/basic_parser_impl.hpp>
#include <optional>

namespace wallex {
namespace {

namespace json = boost::json;

// SAX handler: records the top-level fields of one object. Values nested deeper than the top
// level are only counted (their kind is recorded on the top-level field), never stored.
class FieldCollector {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  DecodedBody body;
  std::optional<BodyDecodeFailure> failure;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) {
    if (depth_ == 0) {
      ++depth_;
      return true;
    }
    return begin_nested(JsonKind::kObject, ec);
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (depth_ == 0) return refuse(BodyDecodeError::kNotAnObject, "body must be a JSON object", ec);
    return begin_nested(JsonKind::kArray, ec);
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ == 1) key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    if (depth_ != 1) return true;
    key_.append(s.data(), s.size());
    for (const JsonField& field : body.fields) {
      if (field.key == key_) {
        return refuse(BodyDecodeError::kDuplicateKey, "duplicate key \"" + key_ + "\" in body", ec);
      }
    }
    if (body.fields.size() >= kBodyFieldsMax) {
      return refuse(BodyDecodeError::kTooManyFields,
                    "body has more than " + std::to_string(kBodyFieldsMax) + " fields", ec);
    }
    body.fields.push_back(JsonField{std::move(key_), JsonKind::kNull, {}});
    key_.clear();
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ == 1) text_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
    text_.append(s.data(), s.size());
    return scalar(JsonKind::kString, ec);
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    if (depth_ == 1) text_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t, json::string_view s, json::error_code& ec) { return number(s, ec); }
  bool on_uint64(std::uint64_t, json::string_view s, json::error_code& ec) { return number(s, ec); }
  bool on_double(double, json::string_view s, json::error_code& ec) { return number(s, ec); }
  bool on_bool(bool b, json::error_code& ec) {
    text_ = b ? "true" : "false";
    return scalar(JsonKind::kBool, ec);
  }
  bool on_null(json::error_code& ec) { return scalar(JsonKind::kNull, ec); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  bool refuse(BodyDecodeError error, std::string message, json::error_code& ec) {
    failure = BodyDecodeFailure{error, std::move(message)};
    ec = json::error::extra_data;  // any error stops the parser; `failure` says what happened
    return false;
  }

  bool begin_nested(JsonKind kind, json::error_code& ec) {
    if (depth_ == 1) body.fields.back().kind = kind;
    ++depth_;
    if (depth_ > kBodyDepthMax) {
      return refuse(BodyDecodeError::kTooDeep,
                    "body nests deeper than " + std::to_string(kBodyDepthMax) + " levels", ec);
    }
    return true;
  }

  bool number(json::string_view s, json::error_code& ec) {
    text_.append(s.data(), s.size());
    return scalar(JsonKind::kNumber, ec);
  }

  bool scalar(JsonKind kind, json::error_code& ec) {
    if (depth_ == 0) {
      text_.clear();
      return refuse(BodyDecodeError::kNotAnObject, "body must be a JSON object", ec);
    }
    if (depth_ == 1) {
      body.fields.back().kind = kind;
      body.fields.back().text = std::move(text_);
    }
    text_.clear();
    return true;
  }

  std::size_t depth_ = 0;
  std::string key_;
  std::string text_;
};

}  // namespace

std::string_view json_kind_name(JsonKind kind) {
  switch (kind) {
    case JsonKind::kNull: return "null";
    case JsonKind::kBool: return "boolean";
    case JsonKind::kNumber: return "number";
    case JsonKind::kString: return "string";
    case JsonKind::kObject: return "object";
    case JsonKind::kArray: return "array";
  }
  return "?";
}

const JsonField* DecodedBody::find(std::string_view key) const {
  for (const JsonField& field : fields) {
    if (field.key == key) return &field;
  }
  return nullptr;
}

Result<DecodedBody, BodyDecodeFailure> decode_object_body(std::string_view body) {
  json::parse_options options;
  // One more than our own limit, so our handler reports depth with its own clear message.
  options.max_depth = kBodyDepthMax + 1;
  json::basic_parser<FieldCollector> parser(options);
  json::error_code ec;
  const std::size_t consumed = parser.write_some(false, body.data(), body.size(), ec);
  FieldCollector& collector = parser.handler();
  if (collector.failure) return fail(std::move(*collector.failure));
  if (ec) {
    return fail(BodyDecodeFailure{BodyDecodeError::kInvalidJson,
                                  "malformed JSON at byte " + std::to_string(consumed) + ": " +
                                      ec.message()});
  }
  if (consumed != body.size()) {
    return fail(BodyDecodeFailure{BodyDecodeError::kInvalidJson,
                                  "malformed JSON: unexpected data after the object at byte " +
                                      std::to_string(consumed)});
  }
  return std::move(collector.body);
}

}  // namespace wallex
