#include "http/server.h"

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/log.h"
#include "service/reply_encoding.h"

namespace wallex {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// File descriptors kept for everything but client connections: the store's and the read side's
// database files, their WAL and shared-memory files, the listening socket, epoll, timers, stdio.
// The process uses about 25; the rest is headroom.
constexpr std::size_t kDescriptorsReserved = 64;

// How long accepting pauses after accept() fails (e.g. EMFILE when another part of the process
// holds more descriptors than reserved). Retrying at once would spin on the same failing
// connection at full CPU and flood the log.
constexpr int kAcceptRetryDelayMs = 100;

// Raises the soft limit on open descriptors to the hard limit (Debian's default soft limit is
// 1,024) and returns how many connections fit in it, at most `wanted`.
std::size_t connections_that_fit(std::size_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return wanted;
  const auto descriptors = static_cast<std::size_t>(limit.rlim_cur);
  const std::size_t fit = descriptors > kDescriptorsReserved * 2 ? descriptors - kDescriptorsReserved
                                                                 : descriptors / 2;
  return std::min(wanted, fit);
}

}  // namespace

struct HttpServer::Impl {
  RequestHandler& handler;
  ServerOptions options;
  // Declared before ioc, so they outlive it: sessions still waiting in the io_context when it
  // is destroyed count themselves out of `connections` in their destructors.
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};  // requests read but not yet fully answered
  std::atomic<bool> draining{false};
  net::io_context ioc;
  // On a strand of its own: stop_accepting() posts the close from the main thread (twice on
  // shutdown), and with several I/O threads that close would otherwise run at the same time as
  // the accept handler, or as the other close, on another thread; an acceptor is not thread-safe.
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;  // on the acceptor's strand
  bool accept_failing = false;  // logged once per episode of failures, not once per attempt
  std::uint16_t port = 0;  // set by listen(), so port() never touches the acceptor
  std::vector<std::thread> threads;
  // Keeps the I/O threads running until shutdown() is done waiting for in-flight requests. A
  // request waiting for the writer has no pending socket operation, so once the acceptor is
  // closed ioc.run() would otherwise return for lack of work, and the replies the writer then
  // posts (e.g. the 503s of a batch whose fsync failed) would never be written.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;

  // Replies from the writer thread, waiting for an I/O thread. One post wakes an I/O thread
  // for everything that arrived meanwhile, instead of one wake-up (and syscall) per reply.
  std::mutex mailbox_mutex;
  std::vector<std::function<void()>> mailbox;
  bool flush_scheduled = false;

  Impl(RequestHandler& h, ServerOptions o)
      : handler(h),
        options(std::move(o)),
        ioc(options.io_threads),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()) {}

  void accept();
  void refuse(tcp::socket socket);

  void deliver(std::function<void()> task) {
    bool schedule = false;
    {
      std::lock_guard lock(mailbox_mutex);
      mailbox.push_back(std::move(task));
      schedule = !flush_scheduled;
      flush_scheduled = true;
    }
    if (schedule) net::post(ioc, [this] { flush_mailbox(); });
  }

  void flush_mailbox() {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(mailbox_mutex);
      tasks.swap(mailbox);
      flush_scheduled = false;
    }
    for (auto& task : tasks) task();
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {
    server_.connections.fetch_add(1);
  }
  ~Session() { server_.connections.fetch_sub(1); }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    if (server_.draining.load()) return close();
    head_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.header_bytes_max));
    parser_->body_limit(server_.options.body_bytes_max);
    stream_.expires_after(std::chrono::milliseconds(server_.options.read_timeout_ms));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close();
    if (ec == http::error::body_limit) {
      return respond_and_close(ErrorCode::kPayloadTooLarge,
                               "Request body exceeds " +
                                   std::to_string(server_.options.body_bytes_max) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return respond_and_close(ErrorCode::kHeadersTooLarge,
                               "Request headers exceed " +
                                   std::to_string(server_.options.header_bytes_max) + " bytes");
    }
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      // Any other HTTP parse error: the byte stream cannot be trusted any more.
      return respond_and_close(ErrorCode::kMalformedRequest, "Malformed HTTP request: " + ec.message());
    }
    if (ec) return close();  // timeout, reset, shutdown

    const auto& request = parser_->get();
    if (!has_supported_framing(request)) {
      // Beast reads a body only when chunked is the last coding; any other coding would leave
      // the body in the stream to be parsed as the next request (request smuggling), and Wallex
      // decodes no coding but chunked.
      return respond_and_close(ErrorCode::kMalformedRequest,
                               "Malformed HTTP request: unsupported Transfer-Encoding (only "
                               "chunked is accepted)");
    }
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    head_ = request.method() == http::verb::head;
    HttpRequest view;
    view.method = request.method_string();
    view.target = request.target();
    view.body = request.body();
    if (auto it = request.find("Idempotency-Key"); it != request.end()) view.idempotency_key = it->value();
    if (auto it = request.find("X-Correlation-Id"); it != request.end()) view.correlation_id = it->value();

    server_.in_flight.fetch_add(1);
    std::optional<HttpResponse> immediate =
        server_.handler.handle(view, [self = shared_from_this()](HttpResponse&& response) {
          self->server_.deliver([self, response = std::move(response)]() mutable {
            // On an I/O thread. With one, the session has no strand (accept()): this thread is
            // the only one that touches it, so the reply is written at once, without the
            // type-erased executor's dispatch.
            if (self->server_.options.io_threads == 1) return self->write(std::move(response));
            net::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
              self->write(std::move(response));
            });
          });
        });
    if (immediate) write(std::move(*immediate));
  }

  // No Transfer-Encoding, or exactly "chunked" (any case, surrounding spaces allowed).
  static bool has_supported_framing(const http::request<http::string_body>& request) {
    const auto field = request.find(http::field::transfer_encoding);
    if (field == request.end()) return true;
    std::string_view value = field->value();
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    constexpr std::string_view kChunked = "chunked";
    if (value.size() != kChunked.size() || request.count(http::field::transfer_encoding) != 1) {
      return false;
    }
    for (std::size_t i = 0; i < kChunked.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(value[i])) != kChunked[i]) return false;
    }
    return true;
  }

  void write(HttpResponse&& response) {
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    message->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive_ && !server_.draining.load());
    message->prepare_payload();
    // A response to HEAD carries the headers of the full response but never a body: a client
    // reads none, so body bytes would be taken as the start of its next response.
    if (head_) message->body().clear();
    stream_.expires_after(std::chrono::milliseconds(server_.options.write_timeout_ms));
    http::async_write(stream_, *message,
                      [self = shared_from_this(), message](beast::error_code ec, std::size_t) {
                        self->server_.in_flight.fetch_sub(1);
                        if (ec) return self->close();
                        if (message->need_eof()) return self->close();
                        self->read();
                      });
  }

  void respond_and_close(ErrorCode code, const std::string& message) {
    keep_alive_ = false;
    // The fields parsed so far are in the message, complete or not (Beast refuses a too-large
    // Content-Length before it marks the header done).
    std::optional<std::string_view> correlation_id;
    if (parser_) {
      const auto& headers = parser_->get();
      if (auto it = headers.find("X-Correlation-Id"); it != headers.end()) correlation_id = it->value();
    }
    server_.in_flight.fetch_add(1);
    write(server_.handler.rejection(correlation_id, code, message));
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD
  unsigned version_ = 11;
};

}  // namespace

void HttpServer::Impl::refuse(tcp::socket socket) {
  // Over the connection limit: a short, complete answer, then close. The socket is fresh, so
  // this small write fits its send buffer and does not block.
  const std::string body = encode_error(ErrorCode::kOverloaded, "Too many open connections");
  const std::string message = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                              "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  beast::error_code ignored;
  net::write(socket, net::buffer(message), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void HttpServer::Impl::accept() {
  // A strand per connection is needed only when several threads run the io_context.
  const net::any_io_executor executor = options.io_threads > 1
                                            ? net::any_io_executor(net::make_strand(ioc))
                                            : net::any_io_executor(ioc.get_executor());
  acceptor.async_accept(executor, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      if (!accept_failing) log::warn("accept failed, pausing new connections: " + ec.message());
      accept_failing = true;
      accept_retry.expires_after(std::chrono::milliseconds(kAcceptRetryDelayMs));
      accept_retry.async_wait([this](beast::error_code timer_error) {
        if (!timer_error) accept();
      });
      return;
    }
    if (accept_failing) log::info("accepting connections again");
    accept_failing = false;
    if (connections.load() >= options.connections_max) {
      refuse(std::move(socket));
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    accept();
  });
}

HttpServer::HttpServer(RequestHandler& handler, ServerOptions options)
    : impl_(std::make_unique<Impl>(handler, std::move(options))) {}

HttpServer::~HttpServer() { shutdown(0); }

Status<std::string> HttpServer::listen() {
  const std::size_t fit = connections_that_fit(impl_->options.connections_max);
  if (fit < impl_->options.connections_max) {
    log::warn("the open file limit allows " + std::to_string(fit) + " connections, not " +
              std::to_string(impl_->options.connections_max) +
              "; further connections get 503 (raise it with ulimit -n)");
    impl_->options.connections_max = fit;
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) return fail("invalid host " + impl_->options.host + ": " + ec.message());
  const tcp::endpoint endpoint(address, impl_->options.port);
  tcp::acceptor& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail("cannot listen on " + impl_->options.host + ":" +
                std::to_string(impl_->options.port) + ": " + ec.message());
  }
  impl_->port = acceptor.local_endpoint().port();
  return Ok{};
}

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::start() {
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->accept();
  for (int i = 0; i < impl_->options.io_threads; ++i) {
    impl_->threads.emplace_back([this] {
      pthread_setname_np(pthread_self(), "wallex-http");
      impl_->ioc.run();
    });
  }
}

void HttpServer::stop_accepting() {
  net::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->accept_retry.cancel();
  });
}

void HttpServer::shutdown(int grace_ms) {
  if (impl_->threads.empty()) return;
  impl_->draining.store(true);
  stop_accepting();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->work.reset();
  impl_->ioc.stop();
  for (std::thread& thread : impl_->threads) thread.join();
  impl_->threads.clear();
}

}  // namespace wallex
