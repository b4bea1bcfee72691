// Endpoint: where the server listens, from a URL of the form http://host:port (a trailing '/'
// is allowed; no path, no https). The host may be a name, an IPv4 address or a bracketed IPv6
// address; the port defaults to 80.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace wallex::bench {

struct Endpoint {
  std::string host;  // without brackets
  std::uint16_t port = 80;
  // The Host header value: "127.0.0.1:3000", "[::1]:3000".
  std::string authority() const;
};

Result<Endpoint, std::string> parse_endpoint_url(std::string_view url);

}  // namespace wallex::bench
