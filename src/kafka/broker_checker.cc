#include "kafka/broker_checker.h"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "kafka/kafka_config.h"

namespace wallex {
namespace {

void quiet_log(const rd_kafka_t* /*rk*/, int /*level*/, const char* facility, const char* message) {
  // An unreachable cluster is the answer of a check, not a log line.
  log::write(log::Level::kDebug, std::string("kafka check ") + facility + ": " + message);
}

}  // namespace

struct BrokerChecker::Impl {
  BrokerCheckerOptions options;
  rd_kafka_t* client = nullptr;
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<std::function<void(BrokerCheck)>> waiters;
  bool stopping = false;
  std::thread thread;

  BrokerCheck ask() {
    BrokerCheck check;
    const auto started = std::chrono::steady_clock::now();
    const struct rd_kafka_metadata* metadata = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(client, 0, nullptr, &metadata, options.metadata_timeout_ms);
    check.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
    if (err) {
      check.error = std::string("metadata request failed: ") + rd_kafka_err2str(err);
    } else {
      check.ok = metadata->broker_cnt > 0;
      check.brokers = metadata->broker_cnt;
      if (!check.ok) check.error = "the cluster reported no brokers";
      rd_kafka_metadata_destroy(metadata);
    }
    return check;
  }

  void run() {
    while (true) {
      std::vector<std::function<void(BrokerCheck)>> answering;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [this] { return stopping || !waiters.empty(); });
        answering.swap(waiters);
        if (stopping) {
          lock.unlock();
          for (auto& done : answering) done(BrokerCheck{false, 0, "stopping", 0});
          return;
        }
      }
      const BrokerCheck check = ask();
      for (auto& done : answering) done(check);
    }
  }
};

BrokerChecker::BrokerChecker(BrokerCheckerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

BrokerChecker::~BrokerChecker() {
  stop();
  if (impl_->client != nullptr) rd_kafka_destroy(impl_->client);
}

Status<std::string> BrokerChecker::open() {
  Impl& impl = *impl_;
  auto conf = make_kafka_config({{"bootstrap.servers", impl.options.brokers},
                                 {"client.id", "wallex-health"},
                                 {"reconnect.backoff.max.ms", "1000"},
                                 {"allow.auto.create.topics", "false"},
                                 {"log_level", "4"}},
                                impl.options.config, quiet_log);
  if (!conf) return fail(conf.error());
  char error[512];
  impl.client = rd_kafka_new(RD_KAFKA_PRODUCER, conf.value(), error, sizeof error);
  if (impl.client == nullptr) {
    rd_kafka_conf_destroy(conf.value());
    return fail(std::string("cannot create the Kafka health client: ") + error);
  }
  return Ok{};
}

void BrokerChecker::start() {
  Impl& impl = *impl_;
  if (impl.client == nullptr || impl.thread.joinable()) return;
  impl.thread = std::thread([&impl] {
    pthread_setname_np(pthread_self(), "wallex-kcheck");
    impl.run();
  });
}

void BrokerChecker::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    impl.stopping = true;
  }
  impl.wake.notify_all();
  if (impl.thread.joinable()) impl.thread.join();
}

void BrokerChecker::check(std::function<void(BrokerCheck)> done) {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.mutex);
    if (!impl.stopping && impl.thread.joinable() && impl.waiters.size() < kWaitersMax) {
      impl.waiters.push_back(std::move(done));
      impl.wake.notify_one();
      return;
    }
  }
  done(BrokerCheck{false, 0, "the broker check is not running or too many checks are waiting", 0});
}

}  // namespace wallex
