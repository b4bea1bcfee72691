#include "kafka/group_projector.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "common/check.h"
#include "common/log.h"
#include "kafka/consumer_message.h"
#include "kafka/kafka_config.h"

namespace wallex {
namespace {

using SteadyClock = std::chrono::steady_clock;

void forward_log(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* message) {
  const std::string line = std::string("kafka ") + facility + ": " + message;
  // A failed commit of Kafka offsets is harmless here (they are only reported, the read store
  // holds the ones that count); it happens on every rebalance.
  if (level <= 4 && std::string_view(facility) != "COMMITFAIL") {
    log::warn(line);
  } else {
    log::write(log::Level::kDebug, line);
  }
}

Result<rd_kafka_conf_t*, std::string> make_config(const KafkaProperties& defaults,
                                                  const KafkaProperties& overrides) {
  return make_kafka_config(defaults, overrides, forward_log);
}

struct Message {
  int partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

Message copy_message(const rd_kafka_message_t* m) {
  Message message;
  message.partition = m->partition;
  message.offset = m->offset;
  if (m->key != nullptr) message.key.emplace(static_cast<const char*>(m->key), m->key_len);
  if (m->payload != nullptr) message.value.assign(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      message.headers.emplace_back(
          name, value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
    }
  }
  return message;
}

// A message's failure is its own (retry, then the DLQ) when the projection refused the event;
// anything else the store reports is the store's (retry the batch, never blame the message).
bool is_message_failure(const StoreError& error) {
  return error.kind == StoreErrorKind::kCorrupt || error.kind == StoreErrorKind::kConflict;
}

}  // namespace

struct GroupProjector::Impl {
  ReadStore& store;
  ConsumerStateStore& state;
  std::vector<std::unique_ptr<Projector>> projectors;
  const Clock& clock;
  const GroupProjectorOptions options;
  const std::atomic<bool>& stopping;

  rd_kafka_t* consumer = nullptr;
  rd_kafka_t* producer = nullptr;  // dead letters

  // The next offset of each assigned partition as this member last read or wrote it in the read
  // store; kNothingStored: the partition starts at the beginning of the topic.
  static constexpr std::int64_t kNothingStored = -1;
  std::map<int, std::int64_t> positions;
  // A partition repositioned because its next message was beyond the stored offset, at that
  // offset: seen again right after, the hole is real (no message there) and accepted.
  std::map<int, std::int64_t> repositioned_at;
  std::vector<Message> pending;  // the batch being polled; cleared by a rebalance
  std::optional<std::string> fatal;

  // Per-wallet applied versions, read through from the store; dropped on rollback/rebalance.
  std::unordered_map<std::string, std::optional<std::int64_t>> versions;
  std::vector<std::string> dirty_versions;

  // Failing messages: tries so far, and those sent to the DLQ waiting for their transaction.
  std::map<std::pair<int, std::int64_t>, int> attempts;
  std::map<std::pair<int, std::int64_t>, DeadLetterRecord> dead_lettered;

  GroupProjectorStats counters;
  SteadyClock::time_point last_progress = SteadyClock::now();
  std::optional<SteadyClock::time_point> first_message;

  Impl(ReadStore& s, ConsumerStateStore& st, std::vector<std::unique_ptr<Projector>> p,
       const Clock& c, GroupProjectorOptions o, const std::atomic<bool>& stop)
      : store(s),
        state(st),
        projectors(std::move(p)),
        clock(c),
        options(std::move(o)),
        stopping(stop) {}

  ~Impl() {
    if (consumer != nullptr) rd_kafka_destroy(consumer);
    if (producer != nullptr) rd_kafka_destroy(producer);
  }

  void forget_caches() {
    for (auto& projector : projectors) projector->reset();
    versions.clear();
    dirty_versions.clear();
  }

  // ------------------------------------------------------------------ rebalances

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<Impl*>(opaque)->rebalance(rk, err, partitions);
  }

  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions) {
    // Messages polled before a rebalance belong to the old assignment: the new one starts
    // again from the stored offsets.
    pending.clear();
    forget_caches();
    dead_lettered.clear();  // sent, but now another member's to record (and maybe send again)
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      positions.clear();
      rd_kafka_assign(rk, nullptr);
      return;
    }
    ++counters.rebalances;
    positions.clear();
    repositioned_at.clear();
    auto stored = state.consumer_offsets(options.group, options.topic);
    for (int tries = 1; !stored && tries < 5 && !stopping.load(); ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(options.store_retry_delay_ms));
      stored = state.consumer_offsets(options.group, options.topic);
    }
    if (!stored) {
      fatal = "reading the stored offsets: " + stored.error().message;
      rd_kafka_assign(rk, nullptr);
      return;
    }
    std::map<int, std::int64_t> by_partition;
    for (const PartitionOffset& offset : stored.value()) {
      by_partition[offset.partition] = offset.next_offset;
    }
    std::string described;
    for (int i = 0; i < partitions->cnt; ++i) {
      rd_kafka_topic_partition_t& p = partitions->elems[i];
      const auto it = by_partition.find(p.partition);
      if (it != by_partition.end()) {
        p.offset = it->second;
        positions[p.partition] = it->second;
      } else {
        p.offset = RD_KAFKA_OFFSET_BEGINNING;
        positions[p.partition] = kNothingStored;
      }
      described += " " + std::to_string(p.partition) + "@" +
                   (it != by_partition.end() ? std::to_string(it->second) : "beginning");
    }
    log::info("project " + options.group + ": assigned" +
              (described.empty() ? std::string(" nothing") : described));
    rd_kafka_assign(rk, partitions);
  }

  void seek(int partition, std::int64_t offset) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, options.topic.c_str(), partition)->offset =
        offset == kNothingStored ? RD_KAFKA_OFFSET_BEGINNING : offset;
    rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer, list, 5'000);
    if (error != nullptr) {
      log::warn("project " + options.group + ": seeking partition " + std::to_string(partition) +
                ": " + rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  // Gives a polled batch up: every partition in it goes back to its stored offset, so none of
  // its messages is passed over (the consumer's fetch position is already beyond them).
  void drop_batch(const std::vector<Message>& batch) {
    std::set<int> partitions;
    for (const Message& m : batch) partitions.insert(m.partition);
    for (const int partition : partitions) {
      const auto it = positions.find(partition);
      if (it != positions.end()) seek(partition, it->second);  // else: no longer assigned here
    }
  }

  // ------------------------------------------------------------------ one transaction

  enum class Outcome { kCommitted, kGivenUp, kMessageFailed, kStoreFailed };
  struct Tried {
    Outcome outcome = Outcome::kCommitted;
    std::size_t index = 0;  // of the failing message
    std::string error;
    StoreError store_error;
  };

  Tried store_failed(const StoreError& error) {
    store.rollback();
    forget_caches();
    Tried tried;
    tried.outcome = Outcome::kStoreFailed;
    tried.store_error = error;
    tried.error = error.message;
    return tried;
  }
  Tried message_failed(std::size_t index, std::string error) {
    store.rollback();
    forget_caches();
    Tried tried;
    tried.outcome = Outcome::kMessageFailed;
    tried.index = index;
    tried.error = std::move(error);
    return tried;
  }

  Result<std::optional<std::int64_t>, StoreError> applied_version(const std::string& wallet) {
    const auto it = versions.find(wallet);
    if (it != versions.end()) return it->second;
    auto loaded = state.consumer_wallet_version(options.group, wallet);
    if (!loaded) return fail(loaded.error());
    versions.emplace(wallet, loaded.value());
    return loaded.value();
  }

  Tried try_batch(const std::vector<Message>& batch, std::uint64_t& applied,
                  std::uint64_t& duplicates) {
    if (auto begun = store.begin_write(); !begun) return store_failed(begun.error());

    // The fence: under the write lock, every partition of the batch must still be where this
    // member left it. Offsets only grow, so an equal value means nobody else wrote it since.
    auto stored = state.consumer_offsets(options.group, options.topic);
    if (!stored) return store_failed(stored.error());
    std::map<int, std::int64_t> stored_by_partition;
    for (const PartitionOffset& o : stored.value())
      stored_by_partition[o.partition] = o.next_offset;
    const auto stored_at = [&stored_by_partition](int partition) {
      const auto it = stored_by_partition.find(partition);
      return it == stored_by_partition.end() ? kNothingStored : it->second;
    };
    std::set<int> moved;
    for (const Message& m : batch) {
      const auto mine = positions.find(m.partition);
      if (mine == positions.end() || mine->second != stored_at(m.partition)) {
        moved.insert(m.partition);
      }
    }
    if (!moved.empty()) {
      store.rollback();
      forget_caches();
      dead_lettered.clear();
      for (const int partition : moved) {
        if (!positions.contains(partition)) continue;  // not assigned here any more
        const std::int64_t now = stored_at(partition);
        log::warn("project " + options.group + ": partition " + std::to_string(partition) +
                  " was moved by another member; resuming at " +
                  (now != kNothingStored ? std::to_string(now) : std::string("the beginning")));
        positions[partition] = now;
      }
      drop_batch(batch);
      ++counters.fenced;
      Tried tried;
      tried.outcome = Outcome::kGivenUp;
      return tried;
    }

    std::map<int, std::int64_t> next = positions;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i];
      std::int64_t& position = next.at(m.partition);  // the fence checked it is assigned
      if (position == kNothingStored && m.offset > 0) {
        // The partition no longer starts at offset 0: retention removed the first events, and
        // every wallet would show a version gap. Not the message's fault: stop, say why.
        store.rollback();
        forget_caches();
        Tried tried;
        tried.outcome = Outcome::kStoreFailed;
        tried.store_error = StoreError{
            StoreErrorKind::kSchemaTooNew,
            "partition " + std::to_string(m.partition) + " of " + options.topic +
                " starts at offset " + std::to_string(m.offset) +
                ", not 0: its first events are gone (retention), so a new store cannot be "
                "built from it; build it from the log instead"};
        tried.error = tried.store_error.message;
        return tried;
      }
      const bool known = position != kNothingStored;
      if (known && m.offset < position) continue;  // a copy already applied
      if (known && m.offset > position) {
        const auto seen = repositioned_at.find(m.partition);
        if (seen == repositioned_at.end() || seen->second != position) {
          // Messages are missing before this one (a batch cut by a rebalance): read them again.
          store.rollback();
          forget_caches();
          repositioned_at[m.partition] = position;
          log::warn("project " + options.group + ": partition " + std::to_string(m.partition) +
                    " jumped from " + std::to_string(position) + " to " + std::to_string(m.offset) +
                    "; reading again from " + std::to_string(position));
          drop_batch(batch);
          Tried tried;
          tried.outcome = Outcome::kGivenUp;
          return tried;
        }
        // The same hole right after going back to it: the broker has no message there (a
        // transaction marker of another producer, compaction). Passed, and said.
        log::warn("project " + options.group + ": partition " + std::to_string(m.partition) +
                  " has no messages from " + std::to_string(position) + " to " +
                  std::to_string(m.offset - 1));
      }
      position = m.offset + 1;
      if (dead_lettered.contains({m.partition, m.offset})) continue;

      auto event =
          event_from_message(m.key ? std::string_view(*m.key) : std::string_view(), m.value);
      if (!event) return message_failed(i, "undecodable message: " + event.error());
      const std::string& wallet = event.value().event.wallet_id;
      auto version = applied_version(wallet);
      if (!version) return store_failed(version.error());
      switch (check_version(version.value(), event.value().event.version)) {
        case VersionCheck::kDuplicate:
          ++duplicates;
          continue;
        case VersionCheck::kGap:
          return message_failed(
              i, "version gap for wallet " + wallet + ": applied " +
                     (version.value() ? std::to_string(*version.value()) : std::string("none")) +
                     ", got " + std::to_string(event.value().event.version));
        case VersionCheck::kApply:
          break;
      }
      for (auto& projector : projectors) {
        if (auto done = projector->apply(event.value(), store); !done) {
          if (is_message_failure(done.error())) return message_failed(i, done.error().message);
          return store_failed(done.error());
        }
      }
      versions[wallet] = event.value().event.version;
      dirty_versions.push_back(wallet);
      ++applied;
    }

    for (auto& projector : projectors) {
      if (auto flushed = projector->flush(store); !flushed) return store_failed(flushed.error());
    }
    std::sort(dirty_versions.begin(), dirty_versions.end());
    dirty_versions.erase(std::unique(dirty_versions.begin(), dirty_versions.end()),
                         dirty_versions.end());
    for (const std::string& wallet : dirty_versions) {
      const std::optional<std::int64_t>& version = versions.at(wallet);
      WALLEX_CHECK(version.has_value());
      if (auto written = state.set_consumer_wallet_version(options.group, wallet, *version);
          !written) {
        return store_failed(written.error());
      }
    }
    for (const auto& [partition, offset] : next) {
      if (offset == kNothingStored || offset == positions.at(partition)) continue;
      if (auto written = state.set_consumer_offset(options.group, options.topic,
                                                   PartitionOffset{partition, offset});
          !written) {
        return store_failed(written.error());
      }
    }
    for (const auto& [where, letter] : dead_lettered) {
      if (auto written = state.add_dead_letter(options.group, letter); !written) {
        return store_failed(written.error());
      }
    }
    if (auto committed = store.commit(); !committed) return store_failed(committed.error());
    dirty_versions.clear();
    positions = std::move(next);
    return Tried{};
  }

  // ------------------------------------------------------------------ dead letters

  struct Delivery {
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  };

  static void on_delivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* /*op*/) {
    auto* delivery = static_cast<Delivery*>(message->_private);
    delivery->done = true;
    delivery->err = message->err;
  }

  // Produces the letter and waits for Kafka's acknowledgement. False only when stopping first.
  bool send_dead_letter(const Message& m, const DeadLetter& letter) {
    const auto headers = dead_letter_headers(m.headers, letter);
    while (!stopping.load()) {
      rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
      for (const auto& [name, value] : headers) {
        rd_kafka_header_add(h, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
      }
      Delivery delivery;
      const char* key = m.key ? m.key->data() : nullptr;
      const std::size_t key_size = m.key ? m.key->size() : 0;
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(options.dead_letter_topic.c_str()),
                            RD_KAFKA_V_KEY(key, key_size),
                            RD_KAFKA_V_VALUE(const_cast<char*>(m.value.data()), m.value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                            RD_KAFKA_V_OPAQUE(&delivery), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(h);  // not taken over on failure
        log::warn("project " + options.group +
                  ": producing a dead letter: " + rd_kafka_err2str(err));
      } else {
        // The report must arrive before `delivery` goes out of scope: wait for it even when
        // stopping (message.timeout.ms bounds the wait).
        while (!delivery.done) rd_kafka_poll(producer, 100);
        if (delivery.err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
        log::warn("project " + options.group +
                  ": a dead letter was not delivered: " + rd_kafka_err2str(delivery.err));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(options.dead_letter_retry_delay_ms));
    }
    return false;
  }

  // ------------------------------------------------------------------ one batch, to the end

  // Applies the batch (or gives it up to a fence); Ok after a commit or when stopping.
  Status<std::string> process(const std::vector<Message>& batch) {
    while (!stopping.load()) {
      std::uint64_t applied = 0;
      std::uint64_t duplicates = 0;
      Tried tried = try_batch(batch, applied, duplicates);
      switch (tried.outcome) {
        case Outcome::kGivenUp:
          return Ok{};
        case Outcome::kCommitted: {
          counters.applied += applied;
          counters.duplicates += duplicates;
          ++counters.batches;
          for (const auto& [where, letter] : dead_lettered) attempts.erase(where);
          dead_lettered.clear();
          for (const Message& m : batch) attempts.erase({m.partition, m.offset});
          if (versions.size() > options.cached_wallets_max) versions.clear();
          commit_kafka_offsets();
          counters.busy_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 SteadyClock::now() - *first_message)
                                 .count();
          return Ok{};
        }
        case Outcome::kStoreFailed:
          if (tried.store_error.kind == StoreErrorKind::kIo ||
              tried.store_error.kind == StoreErrorKind::kSchemaTooNew) {
            return fail(tried.error);
          }
          log::warn("project " + options.group + ": read store failed, retrying: " + tried.error);
          std::this_thread::sleep_for(std::chrono::milliseconds(options.store_retry_delay_ms));
          continue;
        case Outcome::kMessageFailed: {
          const Message& m = batch[tried.index];
          const int tries = ++attempts[{m.partition, m.offset}];
          ++counters.retries;
          log::warn("project " + options.group + ": message at partition " +
                    std::to_string(m.partition) + " offset " + std::to_string(m.offset) +
                    " failed (try " + std::to_string(tries) + " of " +
                    std::to_string(options.max_attempts) + "): " + tried.error);
          if (tries < options.max_attempts) {
            std::this_thread::sleep_for(std::chrono::milliseconds(
                static_cast<std::int64_t>(options.retry_delay_ms) * tries));
            continue;
          }
          DeadLetter letter{options.topic, m.partition, m.offset,
                            options.group, tried.error, tries};
          if (!send_dead_letter(m, letter)) return Ok{};
          ++counters.dead_letters;
          log::warn("project " + options.group + ": sent partition " + std::to_string(m.partition) +
                    " offset " + std::to_string(m.offset) + " to " + options.dead_letter_topic);
          dead_lettered[{m.partition, m.offset}] = DeadLetterRecord{
              options.topic, m.partition, m.offset, tries, tried.error, clock.now_ms()};
          continue;
        }
      }
    }
    return Ok{};
  }

  void commit_kafka_offsets() {
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
    for (const auto& [partition, offset] : positions) {
      if (offset == kNothingStored) continue;
      rd_kafka_topic_partition_list_add(list, options.topic.c_str(), partition)->offset = offset;
    }
    // Asynchronous: these offsets are only reported (lag); a lost commit changes nothing.
    if (list->cnt > 0) (void)rd_kafka_commit(consumer, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
  }

  void report_progress(bool force) {
    const auto now = SteadyClock::now();
    if (!force && now - last_progress < std::chrono::milliseconds(options.progress_interval_ms))
      return;
    last_progress = now;
    log::info("project " + options.group + ": applied " + std::to_string(counters.applied) +
              ", duplicates skipped " + std::to_string(counters.duplicates) + ", dead letters " +
              std::to_string(counters.dead_letters) + ", batches " +
              std::to_string(counters.batches) + ", rebalances " +
              std::to_string(counters.rebalances) + ", fenced " + std::to_string(counters.fenced));
  }
};

GroupProjector::GroupProjector(ReadStore& store, ConsumerStateStore& state,
                               std::vector<std::unique_ptr<Projector>> projectors,
                               const Clock& clock, GroupProjectorOptions options)
    : impl_(std::make_unique<Impl>(store, state, std::move(projectors), clock, std::move(options),
                                   stopping_)) {}

GroupProjector::~GroupProjector() = default;

Status<std::string> GroupProjector::open() {
  Impl& impl = *impl_;
  const GroupProjectorOptions& o = impl.options;
  if (o.brokers.empty()) return fail(std::string("no Kafka brokers given"));
  if (o.group.empty()) return fail(std::string("no consumer group given"));
  if (o.max_attempts < 1 || o.max_attempts > 100)
    return fail(std::string("max attempts must be 1..100"));
  if (o.batch_messages_max < 1) return fail(std::string("batch size must be at least 1"));
  if (impl.projectors.empty()) return fail(std::string("no projector to run"));

  auto consumer_conf = make_config(
      {
          {"bootstrap.servers", o.brokers},
          {"group.id", o.group},
          {"client.id", "wallex-project-" + o.group},
          // The read store holds the offsets that count; Kafka's are committed after each
          // transaction, for lag only.
          {"enable.auto.commit", "false"},
          {"enable.auto.offset.store", "false"},
          {"auto.offset.reset", "earliest"},
          {"reconnect.backoff.max.ms", "1000"},
          {"log_level", "4"},
      },
      o.config);
  if (!consumer_conf) return fail(consumer_conf.error());
  rd_kafka_conf_set_opaque(consumer_conf.value(), &impl);
  rd_kafka_conf_set_rebalance_cb(consumer_conf.value(), &Impl::on_rebalance);
  char error[512];
  impl.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, consumer_conf.value(), error, sizeof error);
  if (impl.consumer == nullptr) {
    rd_kafka_conf_destroy(consumer_conf.value());
    return fail(std::string("cannot create the Kafka consumer: ") + error);
  }
  if (std::string(rd_kafka_rebalance_protocol(impl.consumer)) == "COOPERATIVE") {
    return fail(
        std::string("a cooperative assignor is not supported: the projector assigns "
                    "whole assignments at stored offsets (use range or roundrobin)"));
  }
  rd_kafka_poll_set_consumer(impl.consumer);

  // The dead-letter producer: only the properties that are not the consumer's.
  std::vector<std::pair<std::string, std::string>> producer_overrides;
  for (const auto& property : o.config) {
    if (property.first == "session.timeout.ms" || property.first == "heartbeat.interval.ms" ||
        property.first == "partition.assignment.strategy" ||
        property.first == "max.poll.interval.ms" || property.first == "auto.offset.reset" ||
        property.first == "group.id" || property.first == "enable.auto.commit") {
      continue;
    }
    producer_overrides.push_back(property);
  }
  auto producer_conf = make_config(
      {
          {"bootstrap.servers", o.brokers},
          {"client.id", "wallex-project-dlq-" + o.group},
          {"enable.idempotence", "true"},
          {"acks", "all"},
          {"linger.ms", "0"},
          {"partitioner", "murmur2_random"},
          {"allow.auto.create.topics", "false"},
          {"reconnect.backoff.max.ms", "1000"},
          {"log_level", "4"},
      },
      producer_overrides);
  if (!producer_conf) return fail(producer_conf.error());
  rd_kafka_conf_set_dr_msg_cb(producer_conf.value(), &Impl::on_delivery);
  impl.producer = rd_kafka_new(RD_KAFKA_PRODUCER, producer_conf.value(), error, sizeof error);
  if (impl.producer == nullptr) {
    rd_kafka_conf_destroy(producer_conf.value());
    return fail(std::string("cannot create the dead-letter producer: ") + error);
  }

  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, o.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(impl.consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail(std::string("cannot subscribe to ") + o.topic + ": " + rd_kafka_err2str(err));
  }
  return Ok{};
}

Status<std::string> GroupProjector::run() {
  Impl& impl = *impl_;
  WALLEX_CHECK(impl.consumer != nullptr);
  Status<std::string> outcome = Ok{};
  auto last_message = SteadyClock::now();
  while (!stopping_.load()) {
    impl.pending.clear();
    int timeout_ms = impl.options.poll_timeout_ms;
    while (impl.pending.size() < impl.options.batch_messages_max) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(impl.consumer, timeout_ms);
      if (m == nullptr) break;
      timeout_ms = 0;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        impl.pending.push_back(copy_message(m));
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        log::warn("project " + impl.options.group + ": " + rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
    if (impl.fatal) {
      outcome = fail(*impl.fatal);
      break;
    }
    impl.report_progress(false);
    if (impl.pending.empty()) {
      if (impl.options.idle_exit_ms > 0 && impl.counters.applied > 0 &&
          SteadyClock::now() - last_message >
              std::chrono::milliseconds(impl.options.idle_exit_ms)) {
        break;
      }
      continue;
    }
    last_message = SteadyClock::now();
    if (!impl.first_message) impl.first_message = last_message;
    const std::vector<Message> batch = std::move(impl.pending);
    impl.pending.clear();
    if (auto processed = impl.process(batch); !processed) {
      outcome = processed;
      break;
    }
  }
  impl.report_progress(true);
  // Leaves the group (its partitions go to the other members at once) and commits nothing more.
  rd_kafka_consumer_close(impl.consumer);
  return outcome;
}

GroupProjectorStats GroupProjector::stats() const { return impl_->counters; }

}  // namespace wallex
