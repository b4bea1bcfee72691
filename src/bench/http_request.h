// Writes the bytes of an HTTP/1.1 request the way wallex-bench sends them: keep-alive (the
// HTTP/1.1 default), a Host header, a JSON body with Content-Length, and an optional
// Idempotency-Key.
#pragma once

#include <string>
#include <string_view>

namespace wallex::bench {

struct HttpRequestParts {
  std::string_view method;           // "GET", "POST"
  std::string_view target;           // "/wallets/abc/credit"
  std::string_view host;             // "127.0.0.1:3000"
  std::string_view idempotency_key;  // empty: no header
  std::string_view body;             // empty: no body and no Content-Type
};

// Appends the request to `out` (which a caller reuses across requests to avoid allocations).
void append_http_request(std::string& out, const HttpRequestParts& request);

}  // namespace wallex::bench
