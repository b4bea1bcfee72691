#include "http/server.h"

#include <pthread.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
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

struct HttpServer::Impl {
  RequestHandler& handler;
  ServerOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};  // requests read but not yet fully answered
  std::atomic<bool> draining{false};
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
      : handler(h), options(std::move(o)), ioc(options.io_threads), acceptor(ioc) {}

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
    keep_alive_ = request.keep_alive();
    version_ = request.version();
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
            // On the I/O thread; with one I/O thread there is no strand and this runs inline.
            net::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
              self->write(std::move(response));
            });
          });
        });
    if (immediate) write(std::move(*immediate));
  }

  void write(HttpResponse&& response) {
    auto message = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), version_);
    message->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive_ && !server_.draining.load());
    message->prepare_payload();
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
    if (!ec) {
      if (connections.load() >= options.connections_max) {
        refuse(std::move(socket));
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket), *this)->start();
      }
    } else {
      log::warn("accept failed: " + ec.message());
    }
    accept();
  });
}

HttpServer::HttpServer(RequestHandler& handler, ServerOptions options)
    : impl_(std::make_unique<Impl>(handler, std::move(options))) {}

HttpServer::~HttpServer() { shutdown(0); }

Status<std::string> HttpServer::listen() {
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
  return Ok{};
}

std::uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

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
