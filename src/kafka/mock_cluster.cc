#include "kafka/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <mutex>

#include "kafka/kafka_message.h"

namespace wallex {

struct MockCluster::Impl {
  rd_kafka_t* owner = nullptr;  // the mock cluster lives in this client's threads
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstrap;
  int brokers = 0;
  std::mutex mutex;
  ~Impl() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (owner != nullptr) rd_kafka_destroy(owner);
  }
};

MockCluster::MockCluster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MockCluster::~MockCluster() = default;

Result<std::unique_ptr<MockCluster>, std::string> MockCluster::start(int brokers,
                                                                     bool create_topics) {
  if (brokers < 1 || brokers > 9) return fail(std::string("brokers must be 1..9"));
  auto impl = std::make_unique<Impl>();
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof error);
  impl->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (impl->owner == nullptr) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create the mock cluster's client: ") + error);
  }
  impl->cluster = rd_kafka_mock_cluster_new(impl->owner, brokers);
  if (impl->cluster == nullptr) return fail(std::string("cannot start the mock cluster"));
  impl->bootstrap = rd_kafka_mock_cluster_bootstraps(impl->cluster);
  impl->brokers = brokers;
  auto cluster = std::unique_ptr<MockCluster>(new MockCluster(std::move(impl)));
  if (!create_topics) return cluster;
  for (auto [name, partitions] : {std::pair{kEventsTopic, kEventsTopicPartitions},
                                  std::pair{kDeadLetterTopic, kDeadLetterTopicPartitions}}) {
    if (auto created = cluster->create_topic(std::string(name), partitions); !created) {
      return fail(created.error());
    }
  }
  return cluster;
}

const std::string& MockCluster::bootstrap() const { return impl_->bootstrap; }
int MockCluster::brokers() const { return impl_->brokers; }

Status<std::string> MockCluster::set_broker_down(int broker_id) {
  std::lock_guard lock(impl_->mutex);
  if (broker_id < 1 || broker_id > impl_->brokers)
    return fail("no broker " + std::to_string(broker_id));
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(impl_->cluster, broker_id);
  if (err) return fail(std::string(rd_kafka_err2str(err)));
  return Ok{};
}

Status<std::string> MockCluster::set_broker_up(int broker_id) {
  std::lock_guard lock(impl_->mutex);
  if (broker_id < 1 || broker_id > impl_->brokers)
    return fail("no broker " + std::to_string(broker_id));
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(impl_->cluster, broker_id);
  if (err) return fail(std::string(rd_kafka_err2str(err)));
  return Ok{};
}

Status<std::string> MockCluster::create_topic(const std::string& name, int partitions) {
  std::lock_guard lock(impl_->mutex);
  const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
      impl_->cluster, name.c_str(), partitions, std::min(impl_->brokers, 3));
  if (err) return fail("creating topic " + name + ": " + rd_kafka_err2str(err));
  return Ok{};
}

}  // namespace wallex
