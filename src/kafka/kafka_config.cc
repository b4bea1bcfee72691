#include "kafka/kafka_config.h"

namespace wallex {

Result<rd_kafka_conf_t*, std::string> make_kafka_config(const KafkaProperties& defaults,
                                                        const KafkaProperties& overrides,
                                                        KafkaLogCallback log) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  for (const KafkaProperties* properties : {&defaults, &overrides}) {
    for (const auto& [key, value] : *properties) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return fail("kafka property " + key + "=" + value + ": " + error);
      }
    }
  }
  rd_kafka_conf_set_log_cb(conf, log);
  return conf;
}

}  // namespace wallex
