// Parses one HTTP/1.1 response from the front of a receive buffer. Deliberately small: it
// accepts what a Wallex server sends (status line, headers, a Content-Length body) and calls
// everything else malformed. Chunked transfer coding is not supported (Wallex never uses it).
//
// The parser is a pure function of the buffer, so a caller that received only part of a
// response calls it again after the next read.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wallex::bench {

// Headers larger than this are malformed for our purposes (Wallex sends a few hundred bytes).
inline constexpr std::size_t kResponseHeaderBytesMax = std::size_t{64} * 1024;
inline constexpr std::size_t kResponseBodyBytesMax = std::size_t{64} * 1024 * 1024;

enum class ParseState { kIncomplete, kComplete, kMalformed };

struct ParsedResponse {
  ParseState state = ParseState::kIncomplete;
  int status = 0;
  bool keep_alive = true;    // false when the server said `Connection: close` (or HTTP/1.0)
  std::string_view body;     // points into the parsed buffer
  std::size_t consumed = 0;  // bytes of the buffer this response occupies
  std::string error;         // what was malformed
};

ParsedResponse parse_http_response(std::string_view buffer);

}  // namespace wallex::bench
