#include "kafka/relay.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "kafka/broker_checker.h"
#include "kafka/delivery_window.h"
#include "kafka/group_watch.h"
#include "kafka/kafka_config.h"
#include "kafka/lag_histogram.h"

namespace wallex {
namespace {

using SteadyClock = std::chrono::steady_clock;

// librdkafka's errors (syslog level ≤ 3) are mostly refused connections during an outage: the
// relay carries on and reports them (GET /health/kafka, /health/kafka/stats), so they are
// warnings here; librdkafka already folds repeated identical lines.
void forward_log(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* message) {
  const std::string line = std::string("kafka ") + facility + ": " + message;
  if (level <= 4) {
    log::warn(line);
  } else {
    log::write(log::Level::kDebug, line);
  }
}

// Wallex's producer defaults, then the caller's properties (which win).
Result<rd_kafka_conf_t*, std::string> make_config(const RelayOptions& options) {
  KafkaProperties properties = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "wallex-relay"},
      {"acks", "all"},
      {"linger.ms", "5"},
      // Never expire a message: an outage must delay events, not fail them (the backlog is
      // bounded by in_flight_max instead).
      {"message.timeout.ms", "0"},
      // The Java client's key hashing, so any client maps a wallet to the same partition.
      {"partitioner", "murmur2_random"},
      // librdkafka's default backs off up to 10 s between reconnects; a relay should notice a
      // returning broker within a second.
      {"reconnect.backoff.max.ms", "1000"},
      // A topic the broker creates on first use gets the broker's default partition count, not
      // the 10 that the key → partition contract of docs/kafka-format.md needs: the relay
      // creates its topics itself, or waits for them.
      {"allow.auto.create.topics", "false"},
      {"log_level", "4"},
  };
  properties.emplace_back("enable.idempotence", "true");
  return make_kafka_config(properties, options.config, forward_log);
}

}  // namespace

struct Relay::Impl {
  EventLog& log;
  PublishedPositionStore& positions;
  const Clock& clock;
  const RelayOptions options;

  // Relay thread only.
  rd_kafka_t* producer = nullptr;
  rd_kafka_topic_t* topic = nullptr;
  DeliveryWindow window;
  bool topics_ready = false;
  bool failed = false;  // a delivery failed: drain reports, then resend from the published position
  bool purged = false;  // the producer's queue was emptied after that failure
  std::int64_t saved = 0;
  SteadyClock::time_point last_save{}, last_poll{}, last_rate{};
  std::uint64_t rate_base = 0;

  // Shared with stats() and notify_head().
  std::atomic<std::int64_t> head{0};
  std::atomic<std::int64_t> published{0};
  std::atomic<std::int64_t> saved_position{0};
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<TimestampMs> oldest_pending_ms{0};
  std::atomic<double> rate{0};
  std::atomic<std::uint64_t> published_events{0};
  std::atomic<std::uint64_t> delivery_errors{0};
  LagHistogram ack_lag;
  mutable std::mutex error_mutex;
  std::string last_error;
  std::string state = "stopped";

  // Wake-ups.
  std::mutex wake_mutex;
  std::condition_variable wake;
  bool woken = false;
  bool stopping = false;
  std::thread thread;

  std::unique_ptr<GroupWatch> watch;  // the consumer side, for stats()

  // Broker checks: their own client, so a check never waits behind the producer's queue.
  BrokerChecker checker;

  Impl(EventLog& l, PublishedPositionStore& p, const Clock& c, RelayOptions o)
      : log(l),
        positions(p),
        clock(c),
        options(std::move(o)),
        checker(
            BrokerCheckerOptions{options.brokers, options.config, options.metadata_timeout_ms}) {}

  void set_state(std::string_view s) {
    std::lock_guard lock(error_mutex);
    state = std::string(s);
  }
  void record_error(const std::string& error) {
    {
      std::lock_guard lock(error_mutex);
      if (last_error == error) return;
      last_error = error;
    }
    log::warn("relay: " + error);
  }
  void raise_head(std::int64_t position) {
    std::int64_t seen = head.load();
    while (position > seen && !head.compare_exchange_weak(seen, position)) {
    }
  }

  static void on_delivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    const auto position =
        static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(message->_private));
    if (message->err) {
      // Purged after an earlier failure (see run()): a consequence, not an error of its own.
      if (message->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE) self->delivery_errors.fetch_add(1);
      // One line per episode: the reports of everything behind the first failure follow.
      if (!self->failed) {
        self->record_error("delivery of position " + std::to_string(position) +
                           " failed: " + rd_kafka_err2str(message->err));
      }
      self->failed = true;
      return;
    }
    if (auto occurred_at_ms = self->window.delivered(position)) {
      self->published_events.fetch_add(1);
      self->ack_lag.add(self->clock.now_ms() - *occurred_at_ms);
    }
  }

  Status<std::string> create_producer() {
    auto conf = make_config(options);
    if (!conf) return fail(conf.error());
    rd_kafka_conf_set_opaque(conf.value(), this);
    rd_kafka_conf_set_dr_msg_cb(conf.value(), &Impl::on_delivery);
    char error[512];
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf.value(), error, sizeof error);
    if (producer == nullptr) {
      rd_kafka_conf_destroy(conf.value());
      return fail(std::string("cannot create the Kafka producer: ") + error);
    }
    return Ok{};
  }

  // Only once the topic exists: a topic handle makes librdkafka ask for the topic's metadata,
  // and the mock cluster then creates the topic with its default partition count.
  Status<std::string> create_topic_handle() {
    topic = rd_kafka_topic_new(producer, options.topic.c_str(), nullptr);
    if (topic == nullptr) {
      return fail("cannot create the topic handle: " +
                  std::string(rd_kafka_err2str(rd_kafka_last_error())));
    }
    return Ok{};
  }

  void destroy_producer() {
    if (topic != nullptr) rd_kafka_topic_destroy(topic);
    topic = nullptr;
    if (producer != nullptr) rd_kafka_destroy(producer);
    producer = nullptr;
  }

  // Waits on the wake condition for up to `ms`; false when stopping.
  bool pause_ms(int ms) {
    std::unique_lock lock(wake_mutex);
    wake.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping || woken; });
    woken = false;
    return !stopping;
  }

  // Topics exist (or were created, or creation is impossible and auto-creation is the
  // fallback). False while the cluster does not answer.
  bool ensure_topics() {
    const struct rd_kafka_metadata* metadata = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(producer, 1, nullptr, &metadata, 2'000);
    if (err) {
      record_error(std::string("the Kafka cluster does not answer: ") + rd_kafka_err2str(err));
      return false;
    }
    struct Wanted {
      std::string name;
      int partitions;
      bool present = false;
    };
    std::vector<Wanted> wanted = {{options.topic, kEventsTopicPartitions},
                                  {std::string(kDeadLetterTopic), kDeadLetterTopicPartitions}};
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      for (Wanted& w : wanted) {
        if (w.name == metadata->topics[i].topic && metadata->topics[i].err == 0) {
          w.present = true;
          if (metadata->topics[i].partition_cnt != w.partitions) {
            log::warn("relay: topic " + w.name + " has " +
                      std::to_string(metadata->topics[i].partition_cnt) + " partitions, expected " +
                      std::to_string(w.partitions));
          }
        }
      }
    }
    rd_kafka_metadata_destroy(metadata);
    const bool events_topic_missing = !wanted.front().present;
    std::vector<rd_kafka_NewTopic_t*> missing;
    char error[512];
    for (const Wanted& w : wanted) {
      if (w.present || !options.create_topics) continue;
      rd_kafka_NewTopic_t* t =
          rd_kafka_NewTopic_new(w.name.c_str(), w.partitions, -1, error, sizeof error);
      if (t != nullptr) missing.push_back(t);
    }
    if (missing.empty()) {
      if (!events_topic_missing || auto_create_allowed()) return true;
      record_error("topic " + options.topic + " does not exist; waiting for it");
      return false;
    }
    rd_kafka_queue_t* queue = rd_kafka_queue_new(producer);
    rd_kafka_AdminOptions_t* admin =
        rd_kafka_AdminOptions_new(producer, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(admin, 5'000, error, sizeof error);
    rd_kafka_CreateTopics(producer, missing.data(), missing.size(), admin, queue);
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 10'000);
    std::string outcome;
    if (event == nullptr) {
      outcome = "no answer";
    } else if (rd_kafka_event_error(event)) {
      outcome = rd_kafka_event_error_string(event);
    } else {
      std::size_t count = 0;
      const rd_kafka_topic_result_t** results =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
      for (std::size_t i = 0; i < count; ++i) {
        const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          outcome += std::string(rd_kafka_topic_result_name(results[i])) + ": " +
                     rd_kafka_err2str(e) + "; ";
        } else {
          log::info(std::string("relay: created topic ") + rd_kafka_topic_result_name(results[i]));
        }
      }
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy_array(missing.data(), missing.size());
    if (outcome.empty()) return true;
    // E.g. librdkafka's mock cluster has no CreateTopics: `wallex dev-kafka` creates them.
    if (events_topic_missing && !auto_create_allowed()) {
      record_error("topic " + options.topic + " does not exist and cannot be created (" + outcome +
                   "); waiting for it");
      return false;
    }
    log::warn("relay: cannot create the topics (" + outcome + ")" +
              (events_topic_missing ? "; allow.auto.create.topics=true: the broker creates " +
                                          options.topic + " with its default partition count"
                                    : std::string()));
    return true;
  }

  // The operator opted into broker-side creation with --kafka-config.
  bool auto_create_allowed() const {
    for (const auto& [key, value] : options.config) {
      if (key == "allow.auto.create.topics") return value == "true";
    }
    return false;
  }

  // Hands the next events of the log to the producer. Returns true when more are waiting.
  bool feed() {
    const std::size_t room =
        options.in_flight_max - std::min(options.in_flight_max, window.in_flight());
    if (room == 0) return false;
    const std::size_t limit = std::min(room, options.read_batch_max);
    auto read = log.read_events(window.last_sent(), limit);
    if (!read) {
      record_error("reading the log: " + read.error().message);
      return false;
    }
    last_poll = SteadyClock::now();
    const std::vector<LoggedEvent>& events = read.value();
    for (const LoggedEvent& event : events) {
      const KafkaMessage message = kafka_message_for(event);
      rd_kafka_headers_t* headers = rd_kafka_headers_new(message.headers.size());
      for (const auto& [name, value] : message.headers) {
        rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
      }
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(message.key.data(), message.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(message.value.data()), message.value.size()),
          RD_KAFKA_V_HEADERS(headers),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::intptr_t>(event.position))),
          RD_KAFKA_V_END);
      if (err) {
        rd_kafka_headers_destroy(headers);                       // not taken over on failure
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return false;  // later, when reports free room
        delivery_errors.fetch_add(1);
        failed = true;
        record_error("producing position " + std::to_string(event.position) + ": " +
                     rd_kafka_err2str(err));
        return false;
      }
      window.sent(event.position, event.event.occurred_at_ms);
    }
    if (!events.empty()) raise_head(events.back().position);
    return events.size() == limit;
  }

  void save_if_due(bool force) {
    const std::int64_t position = window.published();
    if (position <= saved) return;
    const auto now = SteadyClock::now();
    if (!force && now - last_save < std::chrono::milliseconds(options.save_interval_ms)) return;
    if (auto s = positions.save(position, clock.now_ms()); !s) {
      record_error("saving the published position: " + s.error().message);
      return;
    }
    saved = position;
    saved_position.store(position);
    last_save = now;
  }

  // Publishes the window's figures for stats(); on poll ticks also learns the log's head and
  // the age of the oldest unpublished event when none is in flight.
  void refresh(bool poll_tick) {
    published.store(window.published());
    in_flight.store(static_cast<std::int64_t>(window.in_flight()));
    if (poll_tick) {
      if (auto last = log.last_position(); last) raise_head(last.value());
    }
    if (window.in_flight() > 0) {
      oldest_pending_ms.store(window.oldest_in_flight_ms());
    } else if (head.load() <= window.published()) {
      oldest_pending_ms.store(0);
    } else if (poll_tick) {
      if (auto next = log.read_events(window.published(), 1); next && !next.value().empty()) {
        oldest_pending_ms.store(next.value().front().event.occurred_at_ms);
      }
    }
    const auto now = SteadyClock::now();
    const auto elapsed = now - last_rate;
    if (elapsed >= std::chrono::seconds(1)) {
      const std::uint64_t count = published_events.load();
      rate.store(static_cast<double>(count - rate_base) /
                 std::chrono::duration<double>(elapsed).count());
      rate_base = count;
      last_rate = now;
    }
  }

  void run() {
    last_rate = SteadyClock::now();
    last_save = SteadyClock::now();
    set_state("connecting");
    while (true) {
      {
        std::lock_guard lock(wake_mutex);
        if (stopping) break;
      }
      if (producer == nullptr) {  // replacing a failed producer did not work: try again
        if (auto created = create_producer(); !created) {
          record_error(created.error());
          if (!pause_ms(options.retry_delay_ms)) break;
          continue;
        }
      }
      if (!topics_ready) {
        topics_ready = ensure_topics();
        refresh(true);
        if (!topics_ready) {
          if (!pause_ms(options.retry_delay_ms)) break;
          continue;
        }
        set_state("publishing");
      }
      if (topic == nullptr) {
        if (auto created = create_topic_handle(); !created) {
          record_error(created.error());
          if (!pause_ms(options.retry_delay_ms)) break;
          continue;
        }
      }
      if (rd_kafka_fatal_error(producer, nullptr, 0)) {
        // An idempotent producer that lost its guarantees: start a new one, resend from the
        // published position.
        char reason[512];
        rd_kafka_fatal_error(producer, reason, sizeof reason);
        record_error(std::string("fatal producer error, restarting the producer: ") + reason);
        delivery_errors.fetch_add(1);
        rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(producer, 0);
        destroy_producer();
        window.rewind();
        failed = false;
        purged = false;
        if (auto created = create_producer(); !created) {
          record_error(created.error());
          if (!pause_ms(options.retry_delay_ms)) break;
        }
        continue;
      }
      rd_kafka_poll(producer, 0);  // delivery reports, on this thread
      if (failed) {
        set_state("retrying");
        if (!purged) {
          // Messages still queued behind the failed one (same partitions, later positions)
          // must not be delivered before it is sent again: a message that expired (finite
          // message.timeout.ms) leaves younger ones of its wallet in the queue, and delivering
          // them now would put a wallet's versions out of order. Messages already on the wire
          // are left to the idempotent producer, whose sequence numbers make a broker refuse
          // anything after a gap.
          rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE);
          purged = true;
        }
        if (rd_kafka_outq_len(producer) > 0) {
          rd_kafka_poll(producer, 50);
          continue;
        }
        log::warn("relay: every outstanding report is in (" +
                  std::to_string(delivery_errors.load()) +
                  " failed deliveries so far); resending from position " +
                  std::to_string(window.published() + 1));
        window.rewind();
        failed = false;
        purged = false;
        refresh(true);
        if (!pause_ms(options.retry_delay_ms)) break;
        set_state("publishing");
      }
      const bool poll_tick =
          SteadyClock::now() - last_poll >= std::chrono::milliseconds(options.poll_interval_ms);
      bool more = false;
      if (poll_tick || head.load() > window.last_sent()) more = feed();
      save_if_due(false);
      refresh(poll_tick);
      if (more) continue;
      if (window.in_flight() > 0) {
        rd_kafka_poll(producer, 10);  // waits for reports, at most 10 ms
      } else if (!pause_ms(options.poll_interval_ms)) {
        break;
      }
    }
    // Stopping: outstanding reports, then the last save.
    if (producer != nullptr) {
      rd_kafka_flush(producer, options.stop_flush_ms);
      save_if_due(true);
      refresh(false);
      if (window.in_flight() > 0) {
        log::warn("relay: stopped with " + std::to_string(window.in_flight()) +
                  " events unconfirmed; they are sent again at the next start");
      }
    }
    set_state("stopped");
  }
};

Relay::Relay(EventLog& log, PublishedPositionStore& positions, const Clock& clock,
             RelayOptions options)
    : impl_(std::make_unique<Impl>(log, positions, clock, std::move(options))) {
  WALLEX_CHECK(impl_->options.in_flight_max > 0 && impl_->options.read_batch_max > 0);
}

Relay::~Relay() {
  stop();
  impl_->destroy_producer();
}

Status<std::string> Relay::open() {
  Impl& impl = *impl_;
  if (impl.options.brokers.empty()) return fail(std::string("no Kafka brokers given"));
  auto loaded = impl.positions.load();
  if (!loaded) return fail("reading the published position: " + loaded.error().message);
  impl.window = DeliveryWindow(loaded.value());
  impl.saved = loaded.value();
  impl.saved_position.store(loaded.value());
  impl.published.store(loaded.value());
  if (auto head = impl.log.last_position(); head) impl.raise_head(head.value());
  if (auto created = impl.create_producer(); !created) return created;

  if (auto opened = impl.checker.open(); !opened) return opened;
  if (impl.options.watch_consumers) {
    GroupWatchOptions watch_options;
    watch_options.brokers = impl.options.brokers;
    watch_options.config = impl.options.config;
    watch_options.topic = impl.options.topic;
    watch_options.interval_ms = impl.options.consumer_stats_interval_ms;
    impl.watch = std::make_unique<GroupWatch>(std::move(watch_options));
    if (auto opened = impl.watch->open(); !opened) return opened;
  }
  return Ok{};
}

void Relay::start() {
  Impl& impl = *impl_;
  WALLEX_CHECK(impl.producer != nullptr && !impl.thread.joinable());
  impl.thread = std::thread([&impl] {
    pthread_setname_np(pthread_self(), "wallex-relay");
    impl.run();
  });
  impl.checker.start();
  if (impl.watch) impl.watch->start();
}

void Relay::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.wake_mutex);
    impl.stopping = true;
  }
  impl.wake.notify_all();
  if (impl.thread.joinable()) impl.thread.join();
  impl.checker.stop();
  if (impl.watch) impl.watch->stop();
}

void Relay::notify_head(std::int64_t last_position) {
  Impl& impl = *impl_;
  impl.raise_head(last_position);
  {
    std::lock_guard lock(impl.wake_mutex);
    impl.woken = true;
  }
  impl.wake.notify_one();
}

RelayStats Relay::stats() const {
  const Impl& impl = *impl_;
  RelayStats stats;
  {
    std::lock_guard lock(impl.error_mutex);
    stats.state = impl.state;
    stats.last_error = impl.last_error;
  }
  stats.published_position = impl.published.load();
  stats.saved_position = impl.saved_position.load();
  stats.head_position = std::max(impl.head.load(), stats.published_position);
  stats.backlog = stats.head_position - stats.published_position;
  stats.in_flight = impl.in_flight.load();
  const TimestampMs oldest = impl.oldest_pending_ms.load();
  if (stats.backlog > 0 && oldest > 0) {
    stats.oldest_unpublished_age_ms = std::max<TimestampMs>(0, impl.clock.now_ms() - oldest);
  }
  stats.publish_rate_per_s = impl.rate.load();
  stats.published_events = impl.published_events.load();
  stats.delivery_errors = impl.delivery_errors.load();
  stats.ack_lag_p50_ms = impl.ack_lag.percentile(0.5);
  stats.ack_lag_p99_ms = impl.ack_lag.percentile(0.99);
  stats.ack_lag_max_ms = impl.ack_lag.max();
  if (impl.watch) stats.consumers = impl.watch->snapshot();
  return stats;
}

void Relay::check_brokers(std::function<void(BrokerCheck)> done) {
  impl_->checker.check(std::move(done));
}

}  // namespace wallex
