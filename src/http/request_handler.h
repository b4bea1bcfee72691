// RequestHandler: routes one HTTP request to the service and builds its response. Knows HTTP
// semantics (routes, status codes, headers) but no transport: server.cc owns sockets and Beast,
// so this file compiles fast and is tested without a network.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/id_generator.h"
#include "kafka/kafka_monitor.h"
#include "projection/projection_runner.h"
#include "projection/query_service.h"
#include "service/wallet_service.h"

namespace wallex {

struct HttpRequest {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // path and query, as sent
  std::string_view body;
  std::optional<std::string_view> idempotency_key;
  std::optional<std::string_view> correlation_id;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

// An error response with the standard body (and Retry-After on 503).
HttpResponse error_response(ErrorCode code, std::string_view message);

// The read side as the handler sees it. Without it the query routes answer 503.
struct ReadSideAccess {
  QueryService* queries = nullptr;                // runs queries, waits for minPosition
  const ProjectionRunner* projections = nullptr;  // lag and health of the projectors
  // On a shared read side (PostgreSQL), instead of `projections`: the projectors' status from
  // the shared checkpoints, and the instance holding the projection lease ("" for none).
  std::function<std::vector<ProjectorStatus>()> shared_statuses;
  std::function<std::string()> projection_lease_holder;
  std::string instance_name;
};

class RequestHandler {
 public:
  // `kafka` is null when Kafka is not configured: GET /health/kafka and /health/kafka/stats then
  // answer 200 {"status":"disabled"}.
  RequestHandler(WalletService& service, IdGenerator& ids, ReadSideAccess read_side = {},
                 KafkaMonitor* kafka = nullptr);

  // Returns the response when it is ready at once (reads of the write side, invalid input).
  // Otherwise the request went to the writer or to the query thread: returns nullopt and calls
  // `respond` exactly once, later, on that thread (never blocks the calling I/O thread).
  std::optional<HttpResponse> handle(const HttpRequest& request,
                                     std::function<void(HttpResponse&&)> respond);

  // The response to a request the transport refused before it could be handled (too large,
  // malformed), with the same correlation-id treatment as every other response.
  HttpResponse rejection(std::optional<std::string_view> correlation_id, ErrorCode code,
                         std::string_view message);

 private:
  std::string correlation_id_for(std::optional<std::string_view> sent);
  std::optional<HttpResponse> route(const HttpRequest& request, const std::string& correlation_id,
                                    std::function<void(HttpResponse&&)>& respond);
  HttpResponse health() const;
  HttpResponse kafka_stats() const;
  // Asks the cluster (on the monitor's thread) and responds from there.
  std::optional<HttpResponse> kafka_health(const std::string& correlation_id,
                                           std::function<void(HttpResponse&&)>& respond);
  // Hands a read-side query to the query thread (after minPosition is reached).
  std::optional<HttpResponse> submit_query(ProjectorId projector, std::int64_t min_position,
                                           QueryFunction query, const std::string& correlation_id,
                                           std::function<void(HttpResponse&&)>& respond);

  WalletService& service_;
  IdGenerator& ids_;
  ReadSideAccess read_side_;
  KafkaMonitor* kafka_;
};

}  // namespace wallex
