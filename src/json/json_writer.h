// JsonWriter: appends compact JSON text to a string. No third-party dependency, no floating
// point: numbers are written from text the caller formatted exactly (Money::to_json_number).
// The caller is responsible for well-formed nesting; strings must be valid UTF-8 (every string
// Wallex writes came through the validating body decoder or from its own code).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wallex {

class JsonWriter {
 public:
  JsonWriter() = default;
  // Reserves room for a document of about `capacity` bytes (one allocation instead of the
  // string's doublings, for documents written on the hot path).
  explicit JsonWriter(std::size_t capacity) { out_.reserve(capacity); }

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // A name that may need escaping (a projector's, a consumer group's).
  JsonWriter& key(std::string_view name);
  // A literal name, written as it is: a literal key must need no escape (checked in debug builds).
  template <std::size_t N>
  JsonWriter& key(const char (&name)[N]) {
    const std::string_view text(name, std::char_traits<char>::length(name));
    assert(needs_no_escape(text));
    separate();
    out_ += '"';
    out_ += text;
    out_ += "\":";
    return *this;
  }
  JsonWriter& string(std::string_view value);
  JsonWriter& number_text(std::string_view json_number);  // already valid JSON number text
  JsonWriter& integer(std::int64_t value);
  JsonWriter& boolean(bool value);
  JsonWriter& null();
  // Inserts an already serialized JSON value (e.g. a stored document).
  JsonWriter& raw_value(std::string_view json);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  static bool needs_no_escape(std::string_view text);
  void separate();
  std::string out_;
};

// Appends `value` as a quoted, escaped JSON string.
void append_json_string(std::string& out, std::string_view value);

}  // namespace wallex
