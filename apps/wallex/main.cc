// wallex: the service binary. `wallex serve` runs the HTTP service on the embedded store.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <pthread.h>

#include "common/clock.h"
#include "common/id_generator.h"
#include "common/log.h"
#include "http/request_handler.h"
#include "http/server.h"
#include "service/wallet_service.h"
#include "store/sqlite/sqlite_store.h"

namespace {

struct ServeConfig {
  std::string host = "0.0.0.0";
  int port = 3000;
  std::string data_dir = "./data";
  std::string store_url;
  int http_threads = 1;
  double idempotency_retention_hours = 24;
  std::size_t queue_length_max = 100'000;
  std::size_t batch_commands_max = 4'096;
  std::size_t body_bytes_max = 100 * 1024;
  std::size_t connections_max = 10'000;
};

// Exit codes: 0 clean shutdown, 1 start-up failure, 2 usage, 3 fatal store failure.
int serve(const ServeConfig& config) {
  using namespace wallex;
  if (!config.store_url.empty() && config.store_url.rfind("sqlite:", 0) != 0) {
    log::error("unsupported --store " + config.store_url +
               ": this build has only the embedded store (use --data-dir)");
    return 2;
  }
  // SIGINT/SIGTERM are taken by sigwait on the main thread; block them before any thread starts
  // so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // internal: the writer reports a fatal store failure
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto store = SqliteStore::open(config.data_dir);
  if (!store) {
    log::error("cannot open store: " + store.error().message);
    return 1;
  }
  SystemClock clock;
  RandomIdGenerator ids;
  ServiceOptions service_options;
  service_options.queue_length_max = config.queue_length_max;
  service_options.batch_commands_max = config.batch_commands_max;
  service_options.idempotency_retention_ms =
      static_cast<TimestampMs>(config.idempotency_retention_hours * 3600.0 * 1000.0);
  std::atomic<bool> fatal{false};
  service_options.on_fatal = [&fatal](const StoreError& error) {
    log::error("fatal store failure, stopping: " + error.message);
    fatal.store(true);
    kill(getpid(), SIGUSR1);
  };
  WalletService service(*store.value(), clock, ids, service_options);
  if (auto started = service.start(); !started) {
    log::error("cannot load state: " + started.error().message);
    return 1;
  }
  RequestHandler handler(service, ids);
  ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = static_cast<std::uint16_t>(config.port);
  server_options.io_threads = config.http_threads;
  server_options.body_bytes_max = config.body_bytes_max;
  server_options.connections_max = config.connections_max;
  HttpServer server(handler, server_options);
  if (auto listening = server.listen(); !listening) {
    log::error(listening.error());
    service.stop();
    return 1;
  }
  server.start();
  log::info("wallex serving on " + config.host + ":" + std::to_string(server.port()) +
            ", data in " + config.data_dir + ", " + std::to_string(service.health().wallet_count) +
            " wallets loaded");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::info(std::string("shutting down (") + (signal_number == SIGUSR1 ? "store failure" : "signal") +
            ")");
  server.stop_accepting();
  service.stop();          // decides and commits everything already queued
  server.shutdown(5'000);  // lets those replies reach their clients
  log::info("stopped");
  return fatal.load() ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Wallex: a digital wallet service with an event-sourced, durable write side"};
  app.require_subcommand(1);
  ServeConfig config;
  if (const char* port = std::getenv("PORT"); port != nullptr && *port != '\0') {
    config.port = std::atoi(port);
  }
  CLI::App* serve_command = app.add_subcommand("serve", "Run the HTTP service");
  serve_command->add_option("--port", config.port, "TCP port (default 3000, or $PORT)")
      ->check(CLI::Range(0, 65535));
  serve_command->add_option("--host", config.host, "Address to listen on");
  serve_command->add_option("--data-dir", config.data_dir, "Directory of the embedded store");
  serve_command->add_option("--store", config.store_url,
                            "Store URL; only the embedded store exists in this build");
  serve_command->add_option("--http-threads", config.http_threads, "HTTP I/O threads")
      ->check(CLI::Range(1, 64));
  serve_command->add_option("--idempotency-retention-hours", config.idempotency_retention_hours,
                            "How long idempotency keys are kept")
      ->check(CLI::Range(0.001, 24.0 * 365));
  serve_command->add_option("--queue-length-max", config.queue_length_max,
                            "Commands waiting for the writer before 503")
      ->check(CLI::Range(1, 10'000'000));
  serve_command->add_option("--batch-commands-max", config.batch_commands_max,
                            "Commands per group commit")
      ->check(CLI::Range(1, 100'000));
  serve_command->add_option("--body-bytes-max", config.body_bytes_max, "Request body limit")
      ->check(CLI::Range(1024, 16 * 1024 * 1024));
  serve_command->add_option("--connections-max", config.connections_max, "Open connection limit")
      ->check(CLI::Range(1, 1'000'000));
  CLI11_PARSE(app, argc, argv);
  if (serve_command->parsed()) return serve(config);
  return 2;
}
