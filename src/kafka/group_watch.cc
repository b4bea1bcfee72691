#include "kafka/group_watch.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "kafka/kafka_config.h"

namespace wallex {
namespace {

using SteadyClock = std::chrono::steady_clock;

void quiet_log(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* message) {
  // An unreachable cluster is reported in the stats (lastError); debug lines only here.
  (void)level;
  log::write(log::Level::kDebug, std::string("kafka watch ") + facility + ": " + message);
}

Result<rd_kafka_t*, std::string> make_client(const GroupWatchOptions& options, rd_kafka_type_t type,
                                             const std::string& group) {
  std::vector<std::pair<std::string, std::string>> properties = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "wallex-group-watch"},
      {"reconnect.backoff.max.ms", "1000"},
      // Asking for a missing topic's watermarks must never make a broker create it (with its
      // default partition count: see the relay).
      {"allow.auto.create.topics", "false"},
      {"log_level", "4"},
  };
  if (type == RD_KAFKA_CONSUMER) {
    properties.emplace_back("group.id", group);
    properties.emplace_back("enable.auto.commit", "false");
  }
  auto made = make_kafka_config(properties, options.config, quiet_log);
  if (!made) return fail(made.error());
  rd_kafka_conf_t* conf = made.value();
  char error[512];
  rd_kafka_t* client = rd_kafka_new(type, conf, error, sizeof error);
  if (client == nullptr) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create a Kafka client: ") + error);
  }
  return client;
}

}  // namespace

struct GroupWatch::Impl {
  const GroupWatchOptions options;
  rd_kafka_t* watermarks = nullptr;        // any client can ask for watermarks
  std::vector<rd_kafka_t*> group_clients;  // one per group: committed offsets need group.id

  mutable std::mutex mutex;
  ConsumerSideStats last;
  SteadyClock::time_point refreshed_at{};
  bool refreshed = false;

  std::mutex wake_mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  explicit Impl(GroupWatchOptions o) : options(std::move(o)) {}
  ~Impl() {
    for (rd_kafka_t* client : group_clients) rd_kafka_destroy(client);
    if (watermarks != nullptr) rd_kafka_destroy(watermarks);
  }

  // Low and high watermark of every partition of a topic.
  Result<std::vector<std::pair<std::int64_t, std::int64_t>>, std::string> marks(
      const std::string& topic, int partitions) {
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    for (int p = 0; p < partitions; ++p) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
          watermarks, topic.c_str(), p, &low, &high, options.request_timeout_ms);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return fail("watermarks of " + topic + " [" + std::to_string(p) +
                    "]: " + rd_kafka_err2str(err));
      }
      out.emplace_back(low, high);
    }
    return out;
  }

  // The cluster's topics, asked for without naming any: a request naming a missing topic makes
  // a broker that cannot be told not to (the mock, brokers before 0.11) create it.
  Result<std::set<std::string>, std::string> topics() {
    const struct rd_kafka_metadata* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(watermarks, 1, nullptr, &metadata, options.request_timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return fail(std::string("metadata request failed: ") + rd_kafka_err2str(err));
    }
    std::set<std::string> names;
    for (int i = 0; i < metadata->topic_cnt; ++i) names.insert(metadata->topics[i].topic);
    rd_kafka_metadata_destroy(metadata);
    return names;
  }

  void refresh() {
    ConsumerSideStats next;
    for (const std::string& group : options.groups) next.groups.push_back(GroupLag{group});
    auto existing = topics();
    std::string missing;
    if (existing) {
      for (const std::string* topic : {&options.topic, &options.dead_letter_topic}) {
        if (!existing.value().contains(*topic)) missing += (missing.empty() ? "" : ", ") + *topic;
      }
    }
    if (!existing || !missing.empty()) {
      next.last_error = existing ? "no topic " + missing + " yet" : existing.error();
      std::lock_guard lock(mutex);
      last = std::move(next);
      return;
    }
    next.groups.clear();
    std::string error;
    auto dlq = marks(options.dead_letter_topic, options.dead_letter_partitions);
    if (dlq) {
      next.dead_letters = 0;
      for (const auto& [low, high] : dlq.value()) next.dead_letters += high - low;
    } else {
      error = dlq.error();
    }
    auto events = marks(options.topic, options.partitions);
    if (!events) error = events.error();
    for (std::size_t g = 0; g < options.groups.size(); ++g) {
      GroupLag lag;
      lag.group = options.groups[g];
      if (events) {
        rd_kafka_topic_partition_list_t* list =
            rd_kafka_topic_partition_list_new(options.partitions);
        for (int p = 0; p < options.partitions; ++p) {
          rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p);
        }
        const rd_kafka_resp_err_t err =
            rd_kafka_committed(group_clients[g], list, options.request_timeout_ms);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          lag.lag = 0;
          for (int i = 0; i < list->cnt; ++i) {
            const rd_kafka_topic_partition_t& tp = list->elems[i];
            const auto [low, high] = events.value()[static_cast<std::size_t>(tp.partition)];
            std::int64_t from = low;
            if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) {
              ++lag.committed_partitions;
              from = tp.offset;
            }
            lag.lag += std::max<std::int64_t>(0, high - from);
          }
        } else {
          error = "committed offsets of " + lag.group + ": " + rd_kafka_err2str(err);
        }
        rd_kafka_topic_partition_list_destroy(list);
      }
      next.groups.push_back(lag);
    }
    next.last_error = error;
    std::lock_guard lock(mutex);
    last = std::move(next);
    if (error.empty()) {
      refreshed = true;
      refreshed_at = SteadyClock::now();
    }
  }

  void run() {
    while (true) {
      refresh();
      std::unique_lock lock(wake_mutex);
      if (wake.wait_for(lock, std::chrono::milliseconds(options.interval_ms),
                        [this] { return stopping; })) {
        return;
      }
    }
  }
};

GroupWatch::GroupWatch(GroupWatchOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

GroupWatch::~GroupWatch() { stop(); }

Status<std::string> GroupWatch::open() {
  Impl& impl = *impl_;
  auto watermarks = make_client(impl.options, RD_KAFKA_PRODUCER, "");
  if (!watermarks) return fail(watermarks.error());
  impl.watermarks = watermarks.value();
  for (const std::string& group : impl.options.groups) {
    auto client = make_client(impl.options, RD_KAFKA_CONSUMER, group);
    if (!client) return fail(client.error());
    impl.group_clients.push_back(client.value());
  }
  std::lock_guard lock(impl.mutex);
  for (const std::string& group : impl.options.groups) impl.last.groups.push_back(GroupLag{group});
  return Ok{};
}

void GroupWatch::start() {
  Impl& impl = *impl_;
  WALLEX_CHECK(impl.watermarks != nullptr && !impl.thread.joinable());
  impl.thread = std::thread([&impl] {
    pthread_setname_np(pthread_self(), "wallex-kwatch");
    impl.run();
  });
}

void GroupWatch::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.wake_mutex);
    impl.stopping = true;
  }
  impl.wake.notify_all();
  if (impl.thread.joinable()) impl.thread.join();
}

ConsumerSideStats GroupWatch::snapshot() const {
  const Impl& impl = *impl_;
  std::lock_guard lock(impl.mutex);
  ConsumerSideStats stats = impl.last;
  if (impl.refreshed) {
    stats.age_ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() -
                                                                         impl.refreshed_at)
                       .count();
  }
  return stats;
}

}  // namespace wallex
