#include "bench/http_response_parser.h"

#include <charconv>

namespace wallex::bench {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

ParsedResponse malformed(std::string error) {
  ParsedResponse parsed;
  parsed.state = ParseState::kMalformed;
  parsed.error = std::move(error);
  return parsed;
}

bool contains_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

ParsedResponse parse_http_response(std::string_view buffer) {
  const std::size_t header_end = buffer.find("\r\n\r\n");
  if (header_end == std::string_view::npos) {
    if (buffer.size() > kResponseHeaderBytesMax) return malformed("response headers too large");
    return ParsedResponse{};
  }
  std::string_view head = buffer.substr(0, header_end);

  // Status line: "HTTP/1.1 201 Created".
  const std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  head = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ') {
    return malformed("bad status line");
  }
  const bool http10 = status_line[7] == '0';
  int status = 0;
  const char* digits = status_line.data() + 9;
  const auto [end, ec] = std::from_chars(digits, digits + 3, status);
  if (ec != std::errc() || end != digits + 3 || status < 100 || status > 599 ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return malformed("bad status code");
  }

  ParsedResponse parsed;
  parsed.status = status;
  parsed.keep_alive = !http10;
  bool has_length = false;
  std::size_t content_length = 0;
  while (!head.empty()) {
    const std::size_t next = head.find("\r\n");
    const std::string_view line = head.substr(0, next);
    head = next == std::string_view::npos ? std::string_view() : head.substr(next + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return malformed("bad header line");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      std::size_t length = 0;
      const auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (e != std::errc() || p != value.data() + value.size() || value.empty()) {
        return malformed("bad Content-Length");
      }
      if (has_length && length != content_length) return malformed("conflicting Content-Length");
      has_length = true;
      content_length = length;
    } else if (iequals(name, "Transfer-Encoding")) {
      return malformed("Transfer-Encoding is not supported");
    } else if (iequals(name, "Connection")) {
      if (contains_token(value, "close")) parsed.keep_alive = false;
      if (contains_token(value, "keep-alive")) parsed.keep_alive = true;
    }
  }
  // 1xx, 204 and 304 carry no body; Wallex never sends them, but they are not malformed.
  const bool bodiless = status < 200 || status == 204 || status == 304;
  if (!has_length && !bodiless) return malformed("response without Content-Length");
  if (content_length > kResponseBodyBytesMax) return malformed("response body too large");

  const std::size_t body_start = header_end + 4;
  if (buffer.size() - body_start < content_length) return ParsedResponse{};
  parsed.state = ParseState::kComplete;
  parsed.body = buffer.substr(body_start, content_length);
  parsed.consumed = body_start + content_length;
  return parsed;
}

}  // namespace wallex::bench
