// HttpServer: HTTP/1.1 over Boost.Beast (the only component that includes Beast or Asio).
//
// One request at a time per connection, answered in order, so pipelined requests are safe.
// Limits, all enforced: request body (413), request headers (431), open connections (further
// connections get 503 and are closed), time to receive a whole request and keep-alive idle time
// (the connection is closed), time to send a response (the connection is closed).
//
// Hostile input: anything Beast cannot parse, and a Transfer-Encoding other than plain
// `chunked`, gets 400 MALFORMED_REQUEST and the connection is closed (the rest of its byte
// stream cannot be trusted). listen() raises the soft limit on open files to the hard limit and
// lowers connections_max to what fits in it, so running out of descriptors shows as 503, never
// as failing accepts; should accept() fail anyway, accepting pauses briefly instead of spinning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/request_handler.h"

namespace wallex {

struct ServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;
  int io_threads = 1;
  std::size_t body_bytes_max = 100 * 1024;  // the original's 100 kB body limit
  std::size_t header_bytes_max = 16 * 1024;
  std::size_t connections_max = 10'000;  // lowered by listen() to what the open file limit allows
  int read_timeout_ms = 30'000;          // whole request, and idle time between keep-alive requests
  int write_timeout_ms = 30'000;
};

class HttpServer {
 public:
  HttpServer(RequestHandler& handler, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; afterwards port() is the real port (useful with port 0).
  Status<std::string> listen();
  std::uint16_t port() const;
  // Starts the I/O threads; returns at once.
  void start();
  // Closes the listening socket; open connections keep being served.
  void stop_accepting();
  // Waits up to grace_ms for responses in progress to be written, then stops all I/O and joins.
  void shutdown(int grace_ms);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wallex
