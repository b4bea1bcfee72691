// wallex: the service binary. `wallex serve` runs the HTTP service on the embedded store (or on
// a shared PostgreSQL store with --store postgresql://...); `wallex migrate up|status` manages
// the PostgreSQL schema; `wallex rebuild` recomputes the read side from the log; `wallex verify`
// checks every invariant.
#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/id_generator.h"
#include "common/log.h"
#include "http/request_handler.h"
#include "http/server.h"
#include "kafka/group_projector.h"
#include "kafka/mock_cluster.h"
#include "kafka/relay.h"
#include "projection/compare.h"
#include "projection/event_feed.h"
#include "projection/projection_runner.h"
#include "projection/projectors.h"
#include "projection/query_service.h"
#include "projection/rebuild.h"
#include "projection/verify.h"
#include "service/wallet_service.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_migrations.h"
#include "store/postgres/pg_leased_relay.h"
#include "store/postgres/pg_read_store.h"
#include "store/postgres/pg_shared_read_side.h"
#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_read_store.h"
#include "store/sqlite/sqlite_relay_checkpoint.h"
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
  std::size_t sync_gather_commands = 64;
  std::size_t body_bytes_max = 100 * 1024;
  std::size_t connections_max = 10'000;
  std::size_t header_bytes_max = 16 * 1024;
  int read_timeout_ms = 30'000;
  int write_timeout_ms = 30'000;
  std::size_t projection_batch_max = 50'000;
  std::size_t projection_feed_max = wallex::EventFeed::kEventsMaxDefault;  // 0: no feed
  int projection_interval_ms = 500;
  int min_position_wait_ms = 2'000;
  bool skip_integrity_check = false;
  // The embedded store's write-model snapshot (SqliteStore::OpenOptions, write_model.h).
  std::int64_t snapshot_events_max = wallex::SqliteStore::OpenOptions{}.snapshot_events_max;
  std::size_t snapshot_wallets_max = wallex::SqliteStore::OpenOptions{}.snapshot_wallets_max;
  std::size_t snapshot_slice_rows = wallex::SqliteStore::OpenOptions{}.snapshot_slice_rows;
  std::string kafka_brokers;               // empty: no relay
  std::vector<std::string> kafka_config;   // key=value librdkafka properties
  std::size_t kafka_in_flight_max = 50'000;
  std::string instance_name;  // empty: <hostname>:<port>:<pid>
};

// "<hostname>:<role>:<pid>": how a process names itself to the other instances (the leases,
// GET /health).
std::string host_role_pid(const std::string& role) {
  char host[64] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host).substr(0, 24) + ":" + role + ":" + std::to_string(getpid());
}

// How this instance names itself to the others (the projection lease, GET /health).
std::string instance_name(const ServeConfig& config) {
  if (!config.instance_name.empty()) return config.instance_name;
  return host_role_pid(std::to_string(config.port));
}

// The relay's options from the command line; nullopt (after logging why) on a malformed
// --kafka-config.
std::optional<wallex::RelayOptions> relay_options_from(const std::string& brokers,
                                                       const std::vector<std::string>& properties,
                                                       std::size_t in_flight_max) {
  wallex::RelayOptions options;
  options.brokers = brokers;
  options.in_flight_max = in_flight_max;
  for (const std::string& property : properties) {
    const std::size_t equals = property.find('=');
    if (equals == std::string::npos || equals == 0) {
      wallex::log::error("--kafka-config " + property + ": expected key=value");
      return std::nullopt;
    }
    options.config.emplace_back(property.substr(0, equals), property.substr(equals + 1));
  }
  return options;
}

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// `wallex migrate up|status --store URL`. Exit codes: 0 done (status: schema current),
// 1 failure (status: migrations pending or the schema is too new), 2 usage.
int migrate_command(const std::string& action, const std::string& url) {
  using namespace wallex;
  if (!is_postgres_url(url)) {
    std::fprintf(stderr,
                 "wallex migrate: --store must be a postgresql:// URL (the embedded SQLite store "
                 "creates its schema itself), got '%s'\n",
                 url.c_str());
    return 2;
  }
  auto connection = PgConnection::connect(url);
  if (!connection) {
    std::fprintf(stderr, "wallex migrate: %s\n", connection.error().message.c_str());
    return 1;
  }
  if (action == "up") {
    auto applied = migrate_up(*connection.value());
    if (!applied) {
      std::fprintf(stderr, "wallex migrate up: %s\n", applied.error().message.c_str());
      return 1;
    }
    for (int version : applied.value()) {
      for (const PgMigration& m : pg_migrations()) {
        if (m.version == version) {
          std::printf("applied %d %.*s\n", version, static_cast<int>(m.name.size()), m.name.data());
        }
      }
    }
    std::printf("schema at version %d%s\n", pg_schema_version(),
                applied.value().empty() ? " (nothing to do)" : "");
    return 0;
  }
  auto status = migration_status(*connection.value());
  if (!status) {
    std::fprintf(stderr, "wallex migrate status: %s\n", status.error().message.c_str());
    return 1;
  }
  for (const AppliedMigration& m : status.value().applied) {
    std::printf("applied %d %s (%s)%s\n", m.version, m.name.c_str(), m.applied_at.c_str(),
                m.version > pg_schema_version() ? " UNKNOWN to this wallex" : "");
  }
  for (const PgMigration& m : status.value().pending) {
    std::printf("pending %d %.*s\n", m.version, static_cast<int>(m.name.size()), m.name.data());
  }
  if (status.value().too_new()) {
    std::printf("schema version %d is newer than this wallex knows (%d): upgrade wallex\n",
                status.value().newest_applied, pg_schema_version());
    return 1;
  }
  if (!status.value().pending.empty()) {
    std::printf("%zu migration(s) pending: run wallex migrate up --store URL\n",
                status.value().pending.size());
    return 1;
  }
  std::printf("schema current (version %d)\n", pg_schema_version());
  return 0;
}

// Exit codes: 0 clean shutdown, 1 start-up failure, 2 usage, 3 fatal store failure.
int serve(const ServeConfig& config) {
  using namespace wallex;
  if (!config.store_url.empty() && config.store_url.rfind("sqlite:", 0) != 0 &&
      !is_postgres_url(config.store_url)) {
    log::error("unsupported --store " + config.store_url +
               ": expected postgresql://... (or no --store for the embedded store in --data-dir)");
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

  // The write side: the embedded store in --data-dir, or the shared PostgreSQL store.
  std::unique_ptr<EventStore> store;
  // The read side's view of the log, on a connection of its own (embedded store only).
  std::unique_ptr<EventLog> event_log;
  // Embedded store: the last durable log position. The writer commits batches before their
  // fsync (SqliteStore is pipelined); the projectors and the relay read up to this, no further.
  std::atomic<std::int64_t> durable_head{0};
  const bool postgres = is_postgres_url(config.store_url);
  if (postgres) {
    auto opened = PgStore::open(config.store_url);  // refuses pending migrations, newer schema
    if (!opened) {
      log::error("cannot open store: " + opened.error().message);
      return 1;
    }
    store = std::move(opened).value();
    // The read side is shared too (PgSharedReadSide, below): every instance queries the shared
    // tables, the holder of the projection lease projects.
  } else {
    SqliteStore::OpenOptions options;
    options.check_integrity = !config.skip_integrity_check;
    options.snapshot_events_max = config.snapshot_events_max;
    options.snapshot_wallets_max = config.snapshot_wallets_max;
    options.snapshot_slice_rows = config.snapshot_slice_rows;
    auto opened = SqliteStore::open(config.data_dir, options);
    if (!opened) {
      log::error("cannot open store: " + opened.error().message);
      return 1;
    }
    store = std::move(opened).value();
    auto head = store->last_position();  // durable: SqliteStore::open synced the WAL
    if (!head) {
      log::error("cannot read the log head: " + head.error().message);
      return 1;
    }
    durable_head.store(head.value());
    auto opened_log = SqliteEventLog::open(config.data_dir, &durable_head);
    if (!opened_log) {
      log::error("cannot open the log for the projectors: " + opened_log.error().message);
      return 1;
    }
    event_log = std::move(opened_log).value();
  }
  SystemClock clock;
  RandomIdGenerator ids;
  ServiceOptions service_options;
  service_options.queue_length_max = config.queue_length_max;
  service_options.batch_commands_max = config.batch_commands_max;
  service_options.sync_gather_commands = config.sync_gather_commands;
  service_options.idempotency_retention_ms =
      static_cast<TimestampMs>(config.idempotency_retention_hours * 3600.0 * 1000.0);
  std::atomic<bool> fatal{false};
  service_options.on_fatal = [&fatal](const StoreError& error) {
    log::error("fatal store failure, stopping: " + error.message);
    fatal.store(true);
    kill(getpid(), SIGUSR1);
  };

  // The read side. Embedded: its own read-only connection to the log, its own file (read.db), a
  // projector thread woken by every commit (and polling), and a query thread with its own
  // connection. PostgreSQL: the shared tables; the lease holder projects (PgSharedReadSide).
  RunnerOptions runner_options;
  runner_options.batch_events_max = config.projection_batch_max;
  runner_options.batch_interval_ms = config.projection_interval_ms;
  QueryOptions query_options;
  query_options.wait_max_ms = config.min_position_wait_ms;
  std::unique_ptr<ReadStore> query_store;
  std::unique_ptr<ProjectionRunner> projections;
  std::unique_ptr<PgSharedReadSide> shared_read_side;
  std::unique_ptr<SqliteReadStore> projection_store;
  // Embedded: the events of durable commits, handed to the projector in memory
  // (projection/event_feed.h); it reads the log for anything the feed does not hold.
  std::unique_ptr<EventFeed> feed;
  std::unique_ptr<FedEventLog> fed_log;
  if (postgres) {
    auto opened_query_store = PgReadStore::open(config.store_url);
    if (!opened_query_store) {
      log::error("cannot open the read side for queries: " + opened_query_store.error().message);
      return 1;
    }
    query_store = std::move(opened_query_store).value();
    SharedReadSideOptions shared_options;
    shared_options.runner = runner_options;
    // Commits of other instances reach the projecting instance only by polling the log head
    // (one indexed single-row read): poll often.
    shared_options.runner.poll_interval_ms = std::min(runner_options.poll_interval_ms, 100);
    shared_read_side = std::make_unique<PgSharedReadSide>(
        config.store_url, instance_name(config), clock, shared_options);
    if (auto opened_shared = shared_read_side->open(); !opened_shared) {
      log::error("cannot read the projection checkpoints: " + opened_shared.error().message);
      return 1;
    }
  } else {
    auto opened_projection_store =
        SqliteReadStore::open(config.data_dir, SqliteReadStore::Access::kReadWrite);
    if (!opened_projection_store) {
      log::error("cannot open the read side: " + opened_projection_store.error().message);
      return 1;
    }
    projection_store = std::move(opened_projection_store).value();
    // The runner flushes after each projector: rows may wait for it and go in groups.
    projection_store->group_live_rows(true);
    auto opened_query_store =
        SqliteReadStore::open(config.data_dir, SqliteReadStore::Access::kReadOnly);
    if (!opened_query_store) {
      log::error("cannot open the read side for queries: " + opened_query_store.error().message);
      return 1;
    }
    query_store = std::move(opened_query_store).value();
    EventLog* projector_log = event_log.get();
    if (config.projection_feed_max > 0) {
      feed = std::make_unique<EventFeed>(config.projection_feed_max);
      fed_log = std::make_unique<FedEventLog>(*event_log, *feed);
      projector_log = fed_log.get();
      service_options.on_durable_events = [feed = feed.get()](std::vector<LoggedEvent>&& events) {
        feed->push(std::move(events));
      };
    }
    projections = std::make_unique<ProjectionRunner>(*projector_log, *projection_store,
                                                     make_projectors(), clock, runner_options);
    if (auto opened = projections->open(); !opened) {
      log::error("cannot read the projection checkpoints: " + opened.error().message);
      return 1;
    }
  }
  PgSharedReadSide* shared = shared_read_side.get();
  ProjectionRunner* runner = projections.get();
  QueryService queries(
      std::move(query_store),
      [runner, shared](ProjectorId id) {
        return shared != nullptr ? shared->checkpoint(id) : runner->checkpoint(id);
      },
      query_options);
  if (shared != nullptr) {
    shared->set_on_progress([&queries] { queries.notify_progress(); });
    queries.set_on_wait([shared] { shared->notify_waiting(); });
  } else {
    runner->set_on_progress([&queries] { queries.notify_progress(); });
    queries.set_on_wait([runner] { runner->notify_waiting(); });
  }

  // The outbox relay (only with --kafka-brokers): its own read-only connection to the log, its
  // published position in relay.db, its own thread. It only reads the log, so nothing it does
  // (or a broker outage) can delay a command.
  std::unique_ptr<SqliteEventLog> relay_log;
  std::unique_ptr<SqliteRelayCheckpoint> relay_checkpoint;
  std::unique_ptr<Relay> relay;
  // On PostgreSQL: the relay lease decides which instance relays (pg_leased_relay.h).
  std::unique_ptr<PgLeasedRelay> leased_relay;
  if (!config.kafka_brokers.empty() && postgres) {
    auto relay_options = relay_options_from(config.kafka_brokers, config.kafka_config,
                                            config.kafka_in_flight_max);
    if (!relay_options) return 2;
    leased_relay = std::make_unique<PgLeasedRelay>(config.store_url, instance_name(config),
                                                   clock, *relay_options);
    if (auto opened = leased_relay->open(); !opened) {
      log::error("cannot start the Kafka relay: " + opened.error());
      return 2;
    }
  } else if (!config.kafka_brokers.empty()) {
    auto relay_options = relay_options_from(config.kafka_brokers, config.kafka_config,
                                            config.kafka_in_flight_max);
    if (!relay_options) return 2;
    auto opened_log = SqliteEventLog::open(config.data_dir, &durable_head);
    if (!opened_log) {
      log::error("cannot open the log for the relay: " + opened_log.error().message);
      return 1;
    }
    relay_log = std::move(opened_log).value();
    auto checkpoint = SqliteRelayCheckpoint::open(config.data_dir);
    if (!checkpoint) {
      log::error("cannot open the relay checkpoint: " + checkpoint.error().message);
      return 1;
    }
    relay_checkpoint = std::move(checkpoint).value();
    relay = std::make_unique<Relay>(*relay_log, *relay_checkpoint, clock, *relay_options);
    if (auto opened = relay->open(); !opened) {
      log::error("cannot start the Kafka relay: " + opened.error());
      return 2;
    }
  }
  service_options.on_commit = [runner, shared, relay = relay.get(),
                               leased = leased_relay.get(),
                               &durable_head](std::int64_t last_position) {
    durable_head.store(last_position);  // before anyone is told to read up to it
    if (runner != nullptr) runner->notify_head(last_position);
    if (shared != nullptr) shared->notify_head(last_position);
    if (relay != nullptr) relay->notify_head(last_position);
    if (leased != nullptr) leased->notify_head(last_position);
  };

  WalletService service(*store, clock, ids, service_options);
  if (auto started = service.start(); !started) {
    log::error("cannot load state: " + started.error().message);
    return 1;
  }
  queries.start();
  if (runner != nullptr) runner->start();
  if (shared != nullptr) shared->start();
  if (relay) relay->start();
  if (leased_relay) leased_relay->start();
  ReadSideAccess read_side{&queries, runner, {}, {}, {}};
  if (shared != nullptr) {
    read_side.shared_statuses = [shared] { return shared->statuses(); };
    read_side.projection_lease_holder = [shared] { return shared->holder(); };
    read_side.instance_name = shared->instance_name();
  }
  KafkaMonitor* kafka_monitor = relay ? static_cast<KafkaMonitor*>(relay.get())
                                      : static_cast<KafkaMonitor*>(leased_relay.get());
  RequestHandler handler(service, ids, read_side, kafka_monitor);
  ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = static_cast<std::uint16_t>(config.port);
  server_options.io_threads = config.http_threads;
  server_options.body_bytes_max = config.body_bytes_max;
  server_options.connections_max = config.connections_max;
  server_options.header_bytes_max = config.header_bytes_max;
  server_options.read_timeout_ms = config.read_timeout_ms;
  server_options.write_timeout_ms = config.write_timeout_ms;
  HttpServer server(handler, server_options);
  if (auto listening = server.listen(); !listening) {
    log::error(listening.error());
    service.stop();
    queries.stop();
    if (runner != nullptr) runner->stop();
    if (shared != nullptr) shared->stop();
    if (relay) relay->stop();
    if (leased_relay) leased_relay->stop();
    return 1;
  }
  server.start();
  log::info("wallex serving on " + config.host + ":" + std::to_string(server.port()) +
            (postgres ? ", PostgreSQL store and read side, instance " + instance_name(config)
                      : ", data in " + config.data_dir) +
            ", " + std::to_string(service.health().wallet_count) + " wallets loaded");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::info(std::string("shutting down (") + (signal_number == SIGUSR1 ? "store failure" : "signal") +
            ")");
  server.stop_accepting();
  service.stop();          // decides and commits everything already queued
  queries.stop();          // answers queued queries; waiting ones get 503
  server.shutdown(5'000);  // lets those replies reach their clients
  // Applies what the log still holds (≤ 5 s), then stops (and gives the lease up).
  if (runner != nullptr) runner->stop();
  if (shared != nullptr) shared->stop();
  if (relay) relay->stop();  // waits for outstanding deliveries (≤ 5 s), saves its position
  if (leased_relay) leased_relay->stop();  // the same, then gives the relay lease up
  log::info("stopped");
  return fatal.load() ? 3 : 0;
}

// `wallex dev-kafka`: librdkafka's mock cluster, a test stand-in for a real Kafka cluster.
// Prints the bootstrap address on stdout (one line), then runs until SIGINT/SIGTERM. Reads
// commands from stdin, one per line, answering "ok" or "error: ..." on stdout: `down N` and
// `up N` (broker N, 1-based), `topic NAME PARTITIONS`. Exit codes: 0 after a signal, 1 when the
// cluster cannot start.
int dev_kafka_command(int brokers) {
  using namespace wallex;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto started = MockCluster::start(brokers);
  if (!started) {
    std::fprintf(stderr, "wallex dev-kafka: %s\n", started.error().c_str());
    return 1;
  }
  std::unique_ptr<MockCluster> cluster = std::move(started).value();
  std::printf("%s\n", cluster->bootstrap().c_str());
  std::fflush(stdout);
  log::info("mock Kafka cluster (a test stand-in, data in memory only) with " +
            std::to_string(brokers) + " brokers at " + cluster->bootstrap() +
            "; topics wallet-events (10 partitions), wallet-events-dlq (5); stdin commands: "
            "down N, up N, topic NAME PARTITIONS");

  std::mutex mutex;  // guards `cluster` between the command thread and the shutdown
  std::thread commands([&mutex, &cluster] {
    std::string line;
    while (std::getline(std::cin, line)) {
      char verb[16] = {};
      char name[256] = {};
      int number = 0;
      std::string answer;
      {
        std::lock_guard lock(mutex);
        if (!cluster) return;
        Status<std::string> done = Ok{};
        if (std::sscanf(line.c_str(), "down %d", &number) == 1) {
          done = cluster->set_broker_down(number);
        } else if (std::sscanf(line.c_str(), "up %d", &number) == 1) {
          done = cluster->set_broker_up(number);
        } else if (std::sscanf(line.c_str(), "topic %255s %d", name, &number) == 2) {
          done = cluster->create_topic(name, number);
        } else if (std::sscanf(line.c_str(), "%15s", verb) != 1) {
          continue;  // blank line
        } else {
          done = fail("unknown command: " + line);
        }
        answer = done ? "ok" : "error: " + done.error();
      }
      std::printf("%s\n", answer.c_str());
      std::fflush(stdout);
    }
  });
  // The command thread may sit in a read of stdin forever; it is not joined.
  commands.detach();

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::info("stopping the mock Kafka cluster");
  {
    std::lock_guard lock(mutex);
    cluster.reset();
  }
  // The detached command thread still refers to `mutex`: leave without destroying anything.
  std::fflush(stdout);
  std::_Exit(0);
}

// Logs a relay's progress every 10 s until SIGINT/SIGTERM (blocked in `signals`).
template <typename AnyRelay>
void relay_until_signal(AnyRelay& relay, const sigset_t& signals) {
  timespec every{10, 0};
  while (true) {
    const int signal_number = sigtimedwait(&signals, nullptr, &every);
    if (signal_number == SIGINT || signal_number == SIGTERM) break;
    const wallex::RelayStats stats = relay.stats();
    wallex::log::info("relay " + stats.state + ": published " +
                      std::to_string(stats.published_position) + ", backlog " +
                      std::to_string(stats.backlog) + ", delivery errors " +
                      std::to_string(stats.delivery_errors));
  }
  relay.stop();
  wallex::log::info("relay stopped at position " +
                    std::to_string(relay.stats().published_position));
}

// `wallex relay --store postgresql://...`: one more candidate for the relay lease of a shared
// database (pg_leased_relay.h): it publishes while it holds the lease, and waits as a standby
// otherwise (every instance of `serve --kafka-brokers` on that database is a candidate too).
int relay_postgres(const std::string& store_url, wallex::RelayOptions options,
                   const sigset_t& signals) {
  using namespace wallex;
  SystemClock clock;
  const std::string name = host_role_pid("relay");
  PgLeasedRelay relay(store_url, name, clock, std::move(options));
  if (auto opened = relay.open(); !opened) {
    log::error("cannot start the Kafka relay: " + opened.error());
    return 2;
  }
  relay.start();
  log::info("relay candidate " + name + " for the shared PostgreSQL store");
  relay_until_signal(relay, signals);
  return 0;
}

// `wallex relay`: the relay alone, beside a server that runs without --kafka-brokers (or
// after it stopped). Without the writer's commit hook it polls the log every 100 ms. One relay
// per data directory: a second one (or a server with --kafka-brokers) is refused (relay.lock);
// with --store, a candidate for the database's relay lease. Logs the backlog every 10 s. Exit
// codes: 0 after SIGINT/SIGTERM, 1 cannot start, 2 usage.
int relay_command(const std::string& data_dir, const std::string& store_url,
                  const std::string& brokers, const std::vector<std::string>& properties,
                  std::size_t in_flight_max) {
  using namespace wallex;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto options = relay_options_from(brokers, properties, in_flight_max);
  if (!options) return 2;
  options->poll_interval_ms = 100;
  if (is_postgres_url(store_url)) return relay_postgres(store_url, *options, signals);
  auto event_log = SqliteEventLog::open(data_dir);
  if (!event_log) {
    log::error("cannot open the log: " + event_log.error().message);
    return 1;
  }
  auto checkpoint = SqliteRelayCheckpoint::open(data_dir);
  if (!checkpoint) {
    log::error("cannot open the relay checkpoint: " + checkpoint.error().message);
    return 1;
  }
  SystemClock clock;
  Relay relay(*event_log.value(), *checkpoint.value(), clock, *options);
  if (auto opened = relay.open(); !opened) {
    log::error("cannot start the Kafka relay: " + opened.error());
    return 2;
  }
  relay.start();
  log::info("relaying " + data_dir + " to " + brokers);
  relay_until_signal(relay, signals);
  return 0;
}

std::int64_t per_second(std::int64_t count, std::int64_t elapsed_ms) {
  return elapsed_ms > 0 ? count * 1000 / elapsed_ms : count * 1000;
}

// `wallex project --source kafka`: a consumer-group projector (kafka/group_projector.h) writing
// its own read store. Exit codes: 0 after SIGINT/SIGTERM (or --idle-exit-ms), 1 cannot start or
// a fatal read-store failure, 2 usage.
struct ProjectConfig {
  std::string source;
  std::string group;
  std::string read_db;
  std::string brokers;
  std::vector<std::string> kafka_config;
  std::vector<std::string> projectors;  // empty: the group's own (see project_command)
  int max_attempts = wallex::kMaxAttemptsDefault;
  std::size_t batch_messages_max = 2'000;
  int idle_exit_ms = 0;
};

std::atomic<bool>* g_project_stop = nullptr;  // lock-free: set from the signal handler
void stop_project(int /*signal*/) {
  if (g_project_stop != nullptr) g_project_stop->store(true);
}

// The projectors of the two consumer groups of the design: the ledger, and the read model with
// the per-wallet event copy (GET /wallets/{id} and /wallets/{id}/events). Empty for another group.
std::vector<std::string> group_projectors(const std::string& group) {
  if (group == "ledger-projector") return {"ledger"};
  if (group == "read-model-projector") return {"readModel", "walletEvents"};
  return {};
}

int project_command(const ProjectConfig& config) {
  using namespace wallex;
  if (config.source != "kafka") {
    log::error("--source " + config.source + ": only kafka is a source of `wallex project`");
    return 2;
  }
  std::vector<std::string> names = config.projectors;
  if (names.empty()) {
    names = group_projectors(config.group);
    if (names.empty()) {
      log::error("--group " + config.group + " has no default projectors: give --projectors");
      return 2;
    }
  }
  ProjectorOptions projector_options;
  std::vector<std::unique_ptr<Projector>> projectors;
  for (auto& projector : make_projectors(projector_options)) {
    if (std::find(names.begin(), names.end(), projector_name(projector->id())) != names.end()) {
      projectors.push_back(std::move(projector));
    }
  }
  if (projectors.size() != names.size()) {
    log::error("--projectors: unknown or repeated name (known: readModel, ledger, walletEvents)");
    return 2;
  }
  auto relay_like = relay_options_from(config.brokers, config.kafka_config, 1);
  if (!relay_like) return 2;
  GroupProjectorOptions options;
  options.brokers = config.brokers;
  options.group = config.group;
  options.config = relay_like->config;
  options.max_attempts = config.max_attempts;
  options.batch_messages_max = config.batch_messages_max;
  options.idle_exit_ms = config.idle_exit_ms;
  auto store = SqliteReadStore::open_file(config.read_db, SqliteReadStore::Access::kReadWrite);
  if (!store) {
    log::error("cannot open " + config.read_db + ": " + store.error().message);
    return 1;
  }
  SystemClock clock;
  GroupProjector projector(*store.value(), *store.value(), std::move(projectors), clock, options);
  if (auto opened = projector.open(); !opened) {
    log::error("cannot start the projector: " + opened.error());
    return 2;
  }
  std::atomic<bool> stop{false};
  g_project_stop = &stop;
  std::signal(SIGINT, stop_project);
  std::signal(SIGTERM, stop_project);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread watcher([&stop, &projector] {
    // The projector polls its flag between batches; this thread only forwards the signal's.
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    projector.request_stop();
  });
  log::info("project " + config.group + ": consuming wallet-events into " + config.read_db);
  const auto started = std::chrono::steady_clock::now();
  auto ran = projector.run();
  stop.store(true);
  watcher.join();
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  const GroupProjectorStats stats = projector.stats();
  log::info("project " + config.group + ": stopped after " + std::to_string(elapsed_ms) +
            " ms; applied " + std::to_string(stats.applied) + ", duplicates " +
            std::to_string(stats.duplicates) + ", dead letters " +
            std::to_string(stats.dead_letters) + "; " +
            std::to_string(per_second(static_cast<std::int64_t>(stats.applied), stats.busy_ms)) +
            " events/s from the first message to the last commit (" +
            std::to_string(stats.busy_ms) + " ms)");
  if (!ran) {
    log::error("project " + config.group + ": " + ran.error());
    return 1;
  }
  return 0;
}

std::string with_thousands(std::int64_t value) {
  std::string digits = std::to_string(value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

// Exit codes: 0 rebuilt, 1 failure (the live tables are then unchanged).
// With a postgresql:// `store_url`, the shared read side of that database (beside running
// instances: the swap waits for the running projection transaction, see pg_read_store.h).
int rebuild_command(const std::string& data_dir, const std::string& store_url) {
  using namespace wallex;
  Result<std::unique_ptr<EventLog>, StoreError> event_log =
      fail(StoreError{StoreErrorKind::kOther, "unset"});
  Result<std::unique_ptr<ReadStore>, StoreError> read_store =
      fail(StoreError{StoreErrorKind::kOther, "unset"});
  if (is_postgres_url(store_url)) {
    auto log = PgEventLog::open(store_url);
    event_log = log ? Result<std::unique_ptr<EventLog>, StoreError>(std::move(log).value())
                    : fail(log.error());
    auto opened = PgReadStore::open(store_url);
    read_store = opened ? Result<std::unique_ptr<ReadStore>, StoreError>(std::move(opened).value())
                        : fail(opened.error());
  } else {
    auto log = SqliteEventLog::open(data_dir);
    event_log = log ? Result<std::unique_ptr<EventLog>, StoreError>(std::move(log).value())
                    : fail(log.error());
    if (log) {
      auto opened = SqliteReadStore::open(data_dir, SqliteReadStore::Access::kReadWrite);
      read_store = opened
                       ? Result<std::unique_ptr<ReadStore>, StoreError>(std::move(opened).value())
                       : fail(opened.error());
    }
  }
  if (!event_log) {
    std::fprintf(stderr, "wallex rebuild: %s\n", event_log.error().message.c_str());
    return 1;
  }
  if (!read_store) {
    std::fprintf(stderr, "wallex rebuild: %s\n", read_store.error().message.c_str());
    return 1;
  }
  const bool terminal = isatty(STDERR_FILENO) != 0;
  std::int64_t last_report_ms = -1'000'000;
  RebuildOptions options;
  options.on_progress = [&](const RebuildProgress& progress) {
    // A progress bar on a terminal, a line a second otherwise.
    if (progress.elapsed_ms - last_report_ms < (terminal ? 200 : 1'000)) return;
    last_report_ms = progress.elapsed_ms;
    const std::int64_t total = std::max<std::int64_t>(progress.head, 1);
    const int percent =
        static_cast<int>(std::min<std::int64_t>(100, progress.last_position * 100 / total));
    const std::string bar = std::string(static_cast<std::size_t>(percent / 4), '#') +
                            std::string(static_cast<std::size_t>(25 - percent / 4), '.');
    std::fprintf(stderr, "%srebuild [%s] %3d%% %s/%s events, %s events/s%s", terminal ? "\r" : "",
                 bar.c_str(), percent, with_thousands(progress.events).c_str(),
                 with_thousands(progress.head).c_str(),
                 with_thousands(per_second(progress.events, progress.elapsed_ms)).c_str(),
                 terminal ? "" : "\n");
    std::fflush(stderr);
  };
  SystemClock clock;
  auto rebuilt = rebuild(*event_log.value(), *read_store.value(), clock, options);
  if (terminal) std::fprintf(stderr, "\n");
  if (!rebuilt) {
    std::fprintf(stderr, "wallex rebuild failed, projections unchanged: %s\n",
                 rebuilt.error().message.c_str());
    return 1;
  }
  const RebuildSummary& summary = rebuilt.value();
  std::fprintf(stderr,
               "rebuilt readModel, ledger and walletEvents from %s events (%s wallets, up to "
               "position %lld) in %.3f s (of which indexing and swap %.3f s): %s events/s\n",
               with_thousands(summary.events).c_str(), with_thousands(summary.wallets).c_str(),
               static_cast<long long>(summary.last_position),
               static_cast<double>(summary.elapsed_ms) / 1000.0,
               static_cast<double>(summary.swap_ms) / 1000.0,
               with_thousands(per_second(summary.events, summary.elapsed_ms)).c_str());
  return 0;
}

// Compares the read side of `data_dir` (read.db) with a Kafka-built read store, for the
// projections of the groups that wrote it (or `names`). Prints the differences; true when equal.
bool compare_command(const std::string& data_dir, wallex::ReadStore* reference,
                     const std::string& compare_path, std::vector<std::string> names) {
  using namespace wallex;
  if (reference == nullptr) {
    std::printf("compare: FAILED, %s has no read side to compare with\n", data_dir.c_str());
    return false;
  }
  auto other = SqliteReadStore::open_file(compare_path, SqliteReadStore::Access::kReadOnly);
  if (!other) {
    std::printf("compare: FAILED, %s\n", other.error().message.c_str());
    return false;
  }
  if (names.empty()) {
    auto groups = other.value()->consumer_groups();
    if (!groups) {
      std::printf("compare: FAILED, %s\n", groups.error().message.c_str());
      return false;
    }
    for (const std::string& group : groups.value()) {
      const std::vector<std::string> of_group = group_projectors(group);
      if (of_group.empty()) {
        std::printf("compare: FAILED, %s was written by group %s: give --compare-projectors\n",
                    compare_path.c_str(), group.c_str());
        return false;
      }
      names.insert(names.end(), of_group.begin(), of_group.end());
    }
    if (groups.value().empty()) {
      std::printf("compare: FAILED, no consumer group ever wrote %s\n", compare_path.c_str());
      return false;
    }
  }
  std::vector<ProjectorId> projections;
  for (const std::string& name : names) {
    const std::optional<ProjectorId> id = projector_from_name(name);
    if (!id) {
      std::printf("compare: FAILED, unknown projector %s\n", name.c_str());
      return false;
    }
    if (std::find(projections.begin(), projections.end(), *id) == projections.end())
      projections.push_back(*id);
  }
  // The reference must hold the whole log, or a store that is ahead looks wrong.
  auto event_log = SqliteEventLog::open(data_dir);
  if (!event_log) {
    std::printf("compare: FAILED, %s\n", event_log.error().message.c_str());
    return false;
  }
  auto head = event_log.value()->last_position();
  auto checkpoints = reference->checkpoints();
  if (!head || !checkpoints) {
    std::printf("compare: FAILED, cannot read the log head or the checkpoints\n");
    return false;
  }
  bool ok = true;
  for (const Checkpoint& checkpoint : checkpoints.value()) {
    if (std::find(projections.begin(), projections.end(), checkpoint.projector) ==
            projections.end() ||
        checkpoint.position == head.value()) {
      continue;
    }
    std::printf(
        "DIFFERENCE %s of read.db is at position %lld, the log at %lld: compare when "
        "it has caught up\n",
        std::string(projector_name(checkpoint.projector)).c_str(),
        static_cast<long long>(checkpoint.position), static_cast<long long>(head.value()));
    ok = false;
  }
  auto report = compare_read_stores(*reference, *other.value(), projections);
  if (!report) {
    std::printf("compare: FAILED, %s\n", report.error().message.c_str());
    return false;
  }
  std::printf("wallex verify --compare-read-db %s\n", compare_path.c_str());
  for (const std::string& line : report.value().summary) std::printf("  %s\n", line.c_str());
  for (const std::string& line : report.value().differences)
    std::printf("DIFFERENCE %s\n", line.c_str());
  const std::int64_t count = report.value().difference_count;
  if (count > static_cast<std::int64_t>(report.value().differences.size())) {
    std::printf("... and %lld more\n",
                static_cast<long long>(
                    count - static_cast<std::int64_t>(report.value().differences.size())));
  }
  if (count == 0 && ok) {
    std::printf("compare: OK, %s equals read.db\n", compare_path.c_str());
    return true;
  }
  std::printf("compare: FAILED, %lld difference(s)\n", static_cast<long long>(count));
  return false;
}

// verify_command on the shared PostgreSQL store: the same checks, one snapshot of the log and of
// the write model (PgEventLog), the shared read side.
int print_verify_report(const wallex::Result<wallex::VerifyReport, wallex::StoreError>& report,
                        const std::string& what, std::int64_t elapsed_ms);

int verify_postgres(const std::string& store_url) {
  using namespace wallex;
  const auto started = std::chrono::steady_clock::now();
  auto event_log = PgEventLog::open(store_url);
  if (!event_log) {
    std::fprintf(stderr, "wallex verify: %s\n", event_log.error().message.c_str());
    return 1;
  }
  auto read_store = PgReadStore::open(store_url);
  if (!read_store) {
    std::fprintf(stderr, "wallex verify: %s\n", read_store.error().message.c_str());
    return 1;
  }
  auto report = verify(*event_log.value(), read_store.value().get());
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  return print_verify_report(report, "(PostgreSQL store)",
                             static_cast<std::int64_t>(elapsed_ms));
}

// Exit codes: 0 every invariant holds, 1 a difference was found or the store could not be read.
int verify_command(const std::string& data_dir, const std::string& store_url,
                   const std::string& compare_path,
                   const std::vector<std::string>& compare_projectors) {
  using namespace wallex;
  if (is_postgres_url(store_url)) {
    if (!compare_path.empty()) {
      std::fprintf(stderr,
                   "wallex verify: --compare-read-db compares with the embedded read.db only\n");
      return 2;
    }
    return verify_postgres(store_url);
  }
  auto event_log = SqliteEventLog::open(data_dir);
  if (!event_log) {
    std::fprintf(stderr, "wallex verify: %s\n", event_log.error().message.c_str());
    return 1;
  }
  std::unique_ptr<SqliteReadStore> read_store;
  auto opened = SqliteReadStore::open(data_dir, SqliteReadStore::Access::kReadOnly);
  if (opened) {
    read_store = std::move(opened).value();
  } else {
    std::printf("read side: %s\n", opened.error().message.c_str());
  }
  const auto started = std::chrono::steady_clock::now();
  // Damage in pages the replay never reads (an index, free pages) is found here.
  if (auto intact = SqliteStore::check_integrity(data_dir); !intact) {
    std::printf("verify: FAILED, %s\n", intact.error().message.c_str());
    return 1;
  }
  auto report = verify(*event_log.value(), read_store.get());
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
  const int verified =
      print_verify_report(report, data_dir, static_cast<std::int64_t>(elapsed_ms));
  if (compare_path.empty()) return verified;
  const bool compared =
      compare_command(data_dir, read_store.get(), compare_path, compare_projectors);
  return verified == 0 && compared ? 0 : 1;
}

int print_verify_report(const wallex::Result<wallex::VerifyReport, wallex::StoreError>& report,
                        const std::string& what, std::int64_t elapsed_ms) {
  if (!report) {
    std::printf("verify: FAILED, the store could not be read: %s\n",
                report.error().message.c_str());
    return 1;
  }
  std::printf("wallex verify %s\n", what.c_str());
  for (const std::string& line : report.value().summary) std::printf("  %s\n", line.c_str());
  for (const std::string& line : report.value().differences)
    std::printf("DIFFERENCE %s\n", line.c_str());
  const std::int64_t count = report.value().difference_count;
  if (count > static_cast<std::int64_t>(report.value().differences.size())) {
    std::printf("... and %lld more\n",
                static_cast<long long>(
                    count - static_cast<std::int64_t>(report.value().differences.size())));
  }
  if (count == 0) {
    std::printf("verify: OK, every invariant holds (%lld ms)\n",
                static_cast<long long>(elapsed_ms));
    return 0;
  }
  std::printf("verify: FAILED, %lld difference(s)\n", static_cast<long long>(count));
  return 1;
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
  serve_command->add_option(
      "--store", config.store_url,
      "postgresql://user@host:port/db: the shared PostgreSQL store (run `wallex migrate up` "
      "first); default: the embedded store in --data-dir");
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
  serve_command
      ->add_option("--sync-gather-commands", config.sync_gather_commands,
                   "While an fsync is under way, commands that gather before the writer "
                   "writes them (1: at once)")
      ->check(CLI::Range(1, 100'000));
  serve_command->add_option("--body-bytes-max", config.body_bytes_max, "Request body limit")
      ->check(CLI::Range(1024, 16 * 1024 * 1024));
  serve_command->add_option("--connections-max", config.connections_max, "Open connection limit")
      ->check(CLI::Range(1, 1'000'000));
  serve_command->add_option("--header-bytes-max", config.header_bytes_max,
                            "Request header limit (431 beyond)")
      ->check(CLI::Range(1024, 1024 * 1024));
  serve_command
      ->add_option("--read-timeout-ms", config.read_timeout_ms,
                   "Longest time to receive a whole request, and keep-alive idle time")
      ->check(CLI::Range(100, 3'600'000));
  serve_command
      ->add_option("--write-timeout-ms", config.write_timeout_ms,
                   "Longest time to send a response to a client that does not read")
      ->check(CLI::Range(100, 3'600'000));
  serve_command
      ->add_option("--projection-batch-max", config.projection_batch_max,
                   "Events per projection transaction")
      ->check(CLI::Range(1, 1'000'000));
  serve_command
      ->add_option("--projection-feed-max", config.projection_feed_max,
                   "Events of durable commits held in memory for the projector (0: it reads "
                   "them back from the log)")
      ->check(CLI::Range(0, 1'000'000));
  serve_command
      ->add_option("--projection-interval-ms", config.projection_interval_ms,
                   "Time new events are gathered into one projection batch when caught up")
      ->check(CLI::Range(0, 10'000));
  serve_command
      ->add_option("--min-position-wait-ms", config.min_position_wait_ms,
                   "Longest wait of a query for its minPosition before 503")
      ->check(CLI::Range(0, 60'000));
  serve_command->add_option("--kafka-brokers", config.kafka_brokers,
                            "Kafka bootstrap servers: publish every event to wallet-events");
  serve_command->add_option("--kafka-config", config.kafka_config,
                            "A librdkafka property key=value for the relay's producer (repeatable)")
      ->allow_extra_args(false);
  serve_command
      ->add_option("--instance-name", config.instance_name,
                   "How this instance names itself to the others on a shared store (default "
                   "host:port:pid; at most 48 characters)")
      ->check([](const std::string& name) {
        return name.size() <= 48 ? std::string() : std::string("at most 48 characters");
      });
  serve_command
      ->add_option("--kafka-in-flight-max", config.kafka_in_flight_max,
                   "Events handed to the Kafka producer and not yet confirmed, at most")
      ->check(CLI::Range(1, 1'000'000));

  int dev_kafka_brokers = 3;
  CLI::App* dev_kafka_sub = app.add_subcommand(
      "dev-kafka",
      "Run librdkafka's mock Kafka cluster (a test stand-in) and print its bootstrap address");
  dev_kafka_sub->add_option("--brokers", dev_kafka_brokers, "Number of brokers")
      ->check(CLI::Range(1, 9));

  serve_command
      ->add_option("--snapshot-events-max", config.snapshot_events_max,
                   "Embedded store: events after the write model's last snapshot that begin the "
                   "next one")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  serve_command
      ->add_option("--snapshot-wallets-max", config.snapshot_wallets_max,
                   "Embedded store: wallets changed since the last snapshot that begin the next "
                   "one")
      ->check(CLI::Range(1, 100'000'000));
  serve_command
      ->add_option("--snapshot-slice-rows", config.snapshot_slice_rows,
                   "Embedded store: fewest snapshot rows written with each commit")
      ->check(CLI::Range(1, 100'000'000));
  serve_command->add_flag("--skip-integrity-check", config.skip_integrity_check,
                          "Do not run PRAGMA quick_check on wallex.db at start (faster start of "
                          "a large store; a damaged file is then found only when read)");

  std::string tool_data_dir = "./data";
  CLI::App* rebuild_sub = app.add_subcommand(
      "rebuild", "Rebuild every projection (read.db) from the log, then swap it in");
  rebuild_sub->add_option("--data-dir", tool_data_dir, "Directory of the embedded store");
  std::string tool_store_url;
  rebuild_sub->add_option("--store", tool_store_url,
                          "postgresql://...: rebuild the shared read side of that database");
  CLI::App* verify_sub = app.add_subcommand(
      "verify", "Replay the log and check every invariant, the write model and the projections");
  verify_sub->add_option("--data-dir", tool_data_dir, "Directory of the embedded store");
  std::string compare_read_db;
  std::vector<std::string> compare_projectors;
  verify_sub->add_option("--compare-read-db", compare_read_db,
                         "Also compare read.db with this read store (one built by `wallex "
                         "project`), row by row");
  verify_sub
      ->add_option("--compare-projectors", compare_projectors,
                   "Projections to compare (default: those of the groups that wrote the store)")
      ->allow_extra_args(false);
  verify_sub->add_option("--store", tool_store_url,
                         "postgresql://...: verify that database (log, write model, read side)");
  std::string relay_brokers;
  std::vector<std::string> relay_config;
  std::size_t relay_in_flight_max = 50'000;
  CLI::App* relay_sub = app.add_subcommand(
      "relay", "Publish the log to Kafka without serving HTTP (one relay per data directory)");
  relay_sub->add_option("--data-dir", tool_data_dir, "Directory of the embedded store");
  relay_sub->add_option("--store", tool_store_url,
                        "postgresql://...: relay that database's log (one relay at a time holds "
                        "its relay lease; this one waits as a standby otherwise)");
  relay_sub->add_option("--kafka-brokers", relay_brokers, "Kafka bootstrap servers")->required();
  relay_sub->add_option("--kafka-config", relay_config,
                        "A librdkafka property key=value for the producer (repeatable)")
      ->allow_extra_args(false);
  relay_sub
      ->add_option("--kafka-in-flight-max", relay_in_flight_max,
                   "Events handed to the Kafka producer and not yet confirmed, at most")
      ->check(CLI::Range(1, 1'000'000));

  std::string migrate_url;
  CLI::App* migrate_sub =
      app.add_subcommand("migrate", "Create or upgrade the PostgreSQL schema, or show its state");
  migrate_sub->require_subcommand(1);
  CLI::App* migrate_up_sub =
      migrate_sub->add_subcommand("up", "Apply every pending migration (safe to run concurrently)");
  CLI::App* migrate_status_sub = migrate_sub->add_subcommand(
      "status", "List applied and pending migrations; exit 1 unless the schema is current");
  for (CLI::App* sub : {migrate_up_sub, migrate_status_sub}) {
    sub->add_option("--store", migrate_url, "postgresql://user@host:port/db")->required();
  }

  ProjectConfig project_config;
  CLI::App* project_sub = app.add_subcommand(
      "project", "Run a consumer-group projector: wallet-events from Kafka into a read store");
  project_sub->add_option("--source", project_config.source, "Where events come from: kafka")
      ->required();
  project_sub
      ->add_option("--group", project_config.group,
                   "Consumer group: ledger-projector or read-model-projector (or any, with "
                   "--projectors)")
      ->required();
  project_sub
      ->add_option("--read-db", project_config.read_db,
                   "The SQLite read store this projector writes (created when missing)")
      ->required();
  project_sub->add_option("--kafka-brokers", project_config.brokers, "Kafka bootstrap servers")
      ->required();
  project_sub
      ->add_option("--kafka-config", project_config.kafka_config,
                   "A librdkafka property key=value for the consumer (repeatable)")
      ->allow_extra_args(false);
  project_sub
      ->add_option("--projectors", project_config.projectors,
                   "Projectors to run: readModel, ledger, walletEvents (repeatable)")
      ->allow_extra_args(false);
  project_sub
      ->add_option("--max-attempts", project_config.max_attempts,
                   "Tries of a failing message before it goes to wallet-events-dlq (default 3)")
      ->check(CLI::Range(1, 100));
  project_sub
      ->add_option("--batch-messages-max", project_config.batch_messages_max,
                   "Messages per read-store transaction")
      ->check(CLI::Range(1, 100'000));
  project_sub
      ->add_option("--idle-exit-ms", project_config.idle_exit_ms,
                   "Exit after this long without messages once one was applied (0: never)")
      ->check(CLI::Range(0, 3'600'000));

  CLI11_PARSE(app, argc, argv);
  if (migrate_sub->parsed()) {
    return migrate_command(migrate_up_sub->parsed() ? "up" : "status", migrate_url);
  }
  if (project_sub->parsed()) return project_command(project_config);
  if (serve_command->parsed()) return serve(config);
  if (rebuild_sub->parsed()) return rebuild_command(tool_data_dir, tool_store_url);
  if (verify_sub->parsed())
    return verify_command(tool_data_dir, tool_store_url, compare_read_db, compare_projectors);
  if (dev_kafka_sub->parsed()) return dev_kafka_command(dev_kafka_brokers);
  if (relay_sub->parsed()) {
    return relay_command(tool_data_dir, tool_store_url, relay_brokers, relay_config,
                         relay_in_flight_max);
  }
  return 2;
}
