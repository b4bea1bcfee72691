#include "json/json_writer.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace wallex {

namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Whether one of the eight bytes of `word` is below 0x20, '"' or '\\': the bytes a JSON string
// must escape. (A byte below n sets its high bit in word - n·kOnes while its own high bit is
// clear; a byte equal to c is one below 1 after XOR with c·kOnes. Borrows only ever run from a
// byte that matched, so the answer for the word is exact.)
bool needs_escape(std::uint64_t word) {
  const std::uint64_t control = (word - 0x20 * kOnes) & ~word;
  const std::uint64_t quote = word ^ ('"' * kOnes);
  const std::uint64_t backslash = word ^ ('\\' * kOnes);
  return ((control | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash)) &
          kHighBits) != 0;
}

bool needs_escape(char c) { return static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\'; }

}  // namespace

void append_json_string(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  // Runs of characters that need no escape are appended whole (ids, amounts, most text), found
  // eight bytes at a time; the last few bytes of a string of eight or more as the eight that
  // end it (some of them looked at twice).
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < value.size()) {
    if (value.size() >= 8) {
      const std::size_t at = value.size() - i >= 8 ? i : value.size() - 8;
      std::uint64_t word;
      std::memcpy(&word, value.data() + at, sizeof word);
      if (!needs_escape(word)) {
        i = at + 8;
        continue;
      }
    }
    const char c = value[i];
    if (!needs_escape(c)) {
      ++i;
      continue;
    }
    out.append(value.data() + run, i - run);
    run = ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        out += "\\u00";
        out += kHex[(u >> 4) & 0xf];
        out += kHex[u & 0xf];
      }
    }
  }
  out.append(value.data() + run, value.size() - run);
  out += '"';
}

bool JsonWriter::needs_no_escape(std::string_view text) {
  for (const char c : text) {
    if (needs_escape(c)) return false;
  }
  return true;
}

void JsonWriter::separate() {
  // A value needs a comma unless it opens a container's contents or follows a key.
  if (out_.empty()) return;
  const char last = out_.back();
  if (last != '{' && last != '[' && last != ':') out_ += ',';
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  out_ += '{';
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  out_ += '}';
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  separate();
  out_ += '[';
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  out_ += ']';
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  separate();
  append_json_string(out_, name);
  out_ += ':';
  return *this;
}

JsonWriter& JsonWriter::string(std::string_view value) {
  separate();
  append_json_string(out_, value);
  return *this;
}

JsonWriter& JsonWriter::number_text(std::string_view json_number) {
  separate();
  out_ += json_number;
  return *this;
}

JsonWriter& JsonWriter::integer(std::int64_t value) {
  separate();
  char digits[24];
  out_.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
  return *this;
}

JsonWriter& JsonWriter::boolean(bool value) {
  separate();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::null() {
  separate();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::raw_value(std::string_view json) {
  separate();
  out_ += json;
  return *this;
}

}  // namespace wallex
