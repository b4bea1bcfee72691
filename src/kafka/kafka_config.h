// KafkaConfig: one way to turn Wallex's librdkafka defaults and the operator's --kafka-config
// properties into a librdkafka configuration, for every client (the relay's producer, the
// consumer-group projectors' consumer and dead-letter producer, the group watch).
//
// Included by src/kafka/*.cc only (it names librdkafka's types).
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace wallex {

using KafkaProperties = std::vector<std::pair<std::string, std::string>>;
using KafkaLogCallback = void (*)(const rd_kafka_t*, int level, const char* facility,
                                  const char* message);

// A new configuration with `defaults`, then `overrides` (a later key wins), logging through
// `log`. Fails, naming the property, on the first one librdkafka refuses. The caller owns the
// result (rd_kafka_new takes it, or rd_kafka_conf_destroy).
Result<rd_kafka_conf_t*, std::string> make_kafka_config(const KafkaProperties& defaults,
                                                        const KafkaProperties& overrides,
                                                        KafkaLogCallback log);

}  // namespace wallex
