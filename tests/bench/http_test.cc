// The bench's own HTTP pieces: request bytes, the response parser, and URL parsing.
#include <gtest/gtest.h>

#include "bench/endpoint.h"
#include "bench/http_request.h"
#include "bench/http_response_parser.h"

namespace wallex::bench {
namespace {

constexpr std::string_view kReply =
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 7\r\n"
    "X-Correlation-Id: abc\r\n\r\n{\"a\":1}";

TEST(HttpResponseParser, CompleteResponse) {
  const ParsedResponse parsed = parse_http_response(kReply);
  ASSERT_EQ(parsed.state, ParseState::kComplete);
  EXPECT_EQ(parsed.status, 201);
  EXPECT_EQ(parsed.body, "{\"a\":1}");
  EXPECT_TRUE(parsed.keep_alive);
  EXPECT_EQ(parsed.consumed, kReply.size());
}

TEST(HttpResponseParser, EveryPrefixIsIncomplete) {
  for (std::size_t n = 0; n < kReply.size(); ++n) {
    EXPECT_EQ(parse_http_response(kReply.substr(0, n)).state, ParseState::kIncomplete) << n;
  }
}

TEST(HttpResponseParser, ConsumesOnlyOneResponse) {
  const std::string two = std::string(kReply) + std::string(kReply);
  const ParsedResponse parsed = parse_http_response(two);
  ASSERT_EQ(parsed.state, ParseState::kComplete);
  EXPECT_EQ(parsed.consumed, kReply.size());
}

TEST(HttpResponseParser, ConnectionClose) {
  const ParsedResponse parsed = parse_http_response(
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(parsed.state, ParseState::kComplete);
  EXPECT_EQ(parsed.status, 503);
  EXPECT_FALSE(parsed.keep_alive);
  EXPECT_TRUE(parsed.body.empty());
  EXPECT_FALSE(parse_http_response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
}

TEST(HttpResponseParser, MalformedResponses) {
  for (std::string_view bad : {
           "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 200 OK\r\n\r\n",  // no Content-Length
           "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
       }) {
    EXPECT_EQ(parse_http_response(bad).state, ParseState::kMalformed) << bad;
  }
  EXPECT_EQ(parse_http_response(std::string(kResponseHeaderBytesMax + 1, 'x')).state,
            ParseState::kMalformed);
}

TEST(HttpRequest, PostWithKeyAndBody) {
  std::string out = "leftover|";
  append_http_request(out, HttpRequestParts{"POST", "/wallets/a/credit", "127.0.0.1:3000", "k-1",
                                            "{\"amount\":5}"});
  EXPECT_EQ(out,
            "leftover|POST /wallets/a/credit HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
            "Idempotency-Key: k-1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
            "{\"amount\":5}");
}

TEST(HttpRequest, GetWithoutBody) {
  std::string out;
  append_http_request(out, HttpRequestParts{"GET", "/health", "h:1", {}, {}});
  EXPECT_EQ(out, "GET /health HTTP/1.1\r\nHost: h:1\r\n\r\n");
}

TEST(Endpoint, ParsesUrls) {
  auto plain = parse_endpoint_url("http://127.0.0.1:3000");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.value().host, "127.0.0.1");
  EXPECT_EQ(plain.value().port, 3000);
  EXPECT_EQ(plain.value().authority(), "127.0.0.1:3000");
  auto slash = parse_endpoint_url("http://localhost/");
  ASSERT_TRUE(slash.ok());
  EXPECT_EQ(slash.value().port, 80);
  auto v6 = parse_endpoint_url("http://[::1]:8080");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6.value().host, "::1");
  EXPECT_EQ(v6.value().authority(), "[::1]:8080");
  for (std::string_view bad : {"https://a:1", "127.0.0.1:3000", "http://a:0", "http://a:70000",
                               "http://a:1/path", "http://:1", "http://a:"}) {
    EXPECT_FALSE(parse_endpoint_url(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace wallex::bench
