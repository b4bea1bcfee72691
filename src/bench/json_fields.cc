#include "bench/json_fields.h"

namespace wallex::bench {

// Recursive descent over the text; `path` holds the dotted path of the value being read.
class JsonFieldsReader {
 public:
  JsonFieldsReader(std::string_view text, JsonFields& fields) : text_(text), fields_(fields) {
    fields_.size_ = 0;
  }

  Status<std::string> read() {
    std::string& path = fields_.path_;
    path.clear();
    skip_space();
    if (!value(path, 0)) return stop_reading(error_);
    skip_space();
    if (pos_ != text_.size()) return stop_reading(at("trailing characters"));
    return Ok{};
  }

 private:
  std::string at(std::string_view what) const {
    return std::string(what) + " at byte " + std::to_string(pos_);
  }
  bool stop(std::string_view what) {
    if (error_.empty()) error_ = at(what);
    return false;
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return stop("invalid literal");
    pos_ += word.size();
    return true;
  }
  Status<std::string> stop_reading(std::string why) {
    fields_.size_ = 0;
    return fail(std::move(why));
  }
  // The next scalar, its buffers reused when an earlier text had as many.
  JsonScalar& next_scalar(const std::string& path, JsonScalarKind kind) {
    if (fields_.size_ == fields_.scalars_.size()) fields_.scalars_.emplace_back();
    JsonScalar& scalar = fields_.scalars_[fields_.size_++];
    scalar.path.assign(path);
    scalar.kind = kind;
    scalar.text.clear();
    return scalar;
  }
  void add(const std::string& path, JsonScalarKind kind, std::string_view text) {
    next_scalar(path, kind).text.assign(text);
  }

  bool value(std::string& path, int depth) {
    if (depth > kJsonDepthMax) return stop("nesting too deep");
    if (pos_ >= text_.size()) return stop("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return object(path, depth);
    if (c == '[') return array(path, depth);
    if (c == '"') {
      // Decoded straight into the scalar; a failure discards every scalar anyway.
      return string(next_scalar(path, JsonScalarKind::kString).text);
    }
    if (c == 't' || c == 'f') {
      const bool truth = c == 't';
      if (!literal(truth ? "true" : "false")) return false;
      add(path, JsonScalarKind::kBool, truth ? "true" : "false");
      return true;
    }
    if (c == 'n') {
      if (!literal("null")) return false;
      add(path, JsonScalarKind::kNull, "");
      return true;
    }
    return number(path);
  }

  bool object(std::string& path, int depth) {
    ++pos_;  // '{'
    skip_space();
    if (consume('}')) return true;
    const std::size_t base = path.size();
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') return stop("expected a key");
      if (base > 0) path += '.';
      if (!string(path)) return false;  // the key, decoded onto the path
      skip_space();
      if (!consume(':')) return stop("expected ':'");
      skip_space();
      if (!value(path, depth + 1)) return false;
      path.resize(base);
      skip_space();
      if (consume('}')) return true;
      if (!consume(',')) return stop("expected ',' or '}'");
    }
  }

  bool array(std::string& path, int depth) {
    ++pos_;  // '['
    skip_space();
    if (consume(']')) return true;
    const std::size_t base = path.size();
    for (std::size_t index = 0;; ++index) {
      skip_space();
      if (base > 0) path += '.';
      path += std::to_string(index);
      if (!value(path, depth + 1)) return false;
      path.resize(base);
      skip_space();
      if (consume(']')) return true;
      if (!consume(',')) return stop("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& out) {
    if (pos_ + 4 > text_.size()) return stop("short \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const int digit = hex(text_[pos_++]);
      if (digit < 0) return stop("bad \\u escape");
      out = out * 16 + static_cast<unsigned>(digit);
    }
    return true;
  }
  static void append_utf8(std::string& out, unsigned code_point) {
    if (code_point < 0x80) {
      out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
      out += static_cast<char>(0xC0 | (code_point >> 6));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
      out += static_cast<char>(0xE0 | (code_point >> 12));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code_point >> 18));
      out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
  }

  bool string(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      // The characters up to the next quote, escape or control character, in one piece.
      const std::size_t run = pos_;
      while (pos_ < text_.size()) {
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++pos_;
      }
      out.append(text_.data() + run, pos_ - run);
      if (pos_ >= text_.size()) return stop("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') return stop("control character in string");
      if (pos_ >= text_.size()) return stop("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned code_point = 0;
          if (!hex4(code_point)) return false;
          if (code_point >= 0xD800 && code_point < 0xDC00) {
            unsigned low = 0;
            if (!consume('\\') || !consume('u') || !hex4(low) || low < 0xDC00 || low > 0xDFFF) {
              return stop("unpaired surrogate");
            }
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
          } else if (code_point >= 0xDC00 && code_point < 0xE000) {
            return stop("unpaired surrogate");
          }
          append_utf8(out, code_point);
          break;
        }
        default:
          return stop("bad escape");
      }
    }
  }

  bool digits() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool number(const std::string& path) {
    const std::size_t start = pos_;
    consume('-');
    if (consume('0')) {
      // a leading zero stands alone
    } else if (!digits()) {
      return stop("expected a value");
    }
    if (consume('.') && !digits()) return stop("bad fraction");
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (!consume('+')) consume('-');
      if (!digits()) return stop("bad exponent");
    }
    add(path, JsonScalarKind::kNumber, text_.substr(start, pos_ - start));
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
  JsonFields& fields_;
};

Result<JsonFields, std::string> JsonFields::parse(std::string_view text) {
  JsonFields fields;
  if (auto parsed = fields.parse_into(text); !parsed) return fail(parsed.error());
  return fields;
}

Status<std::string> JsonFields::parse_into(std::string_view text) {
  return JsonFieldsReader(text, *this).read();
}

const JsonScalar* JsonFields::find(std::string_view path) const {
  for (const JsonScalar& scalar : scalars()) {
    if (scalar.path == path) return &scalar;
  }
  return nullptr;
}

const JsonScalar* JsonFields::find(std::string_view prefix, std::string_view key) const {
  for (const JsonScalar& scalar : scalars()) {
    if (path_below(scalar.path, prefix) == key) return &scalar;
  }
  return nullptr;
}

std::optional<std::string_view> JsonFields::path_below(std::string_view path,
                                                       std::string_view prefix) {
  if (prefix.empty()) return path;
  if (path.size() <= prefix.size() || !path.starts_with(prefix) || path[prefix.size()] != '.') {
    return std::nullopt;
  }
  return path.substr(prefix.size() + 1);
}

}  // namespace wallex::bench
