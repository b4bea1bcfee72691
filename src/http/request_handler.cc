#include "http/request_handler.h"

#include <cstdio>

#include "domain/ids.h"
#include "http/command_decoder.h"
#include "json/json_writer.h"
#include "projection/queries.h"
#include "service/reply_encoding.h"

namespace wallex {
namespace {

constexpr std::size_t kCorrelationIdLengthMax = 128;

template <typename T>
using Decoded = Result<T, InputError>;

InputError input_error(ErrorCode code, std::string message) { return {code, std::move(message)}; }

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    segments.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (!segments.empty() && segments.back().empty()) segments.pop_back();  // trailing '/'
  return segments;
}

// "a=1&b=x%20y" -> {("a","1"), ("b","x y")}. '+' stays '+' (RFC 3986 gives it no meaning, and
// ISO-8601 offsets such as +01:00 arrive unencoded).
Decoded<QueryParams> parse_query_string(std::string_view text) {
  QueryParams params;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t amp = text.find('&', start);
    const std::string_view part =
        text.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!part.empty()) {
      const std::size_t equals = part.find('=');
      std::optional<std::string> name = percent_decode(part.substr(0, equals));
      std::optional<std::string> value = equals == std::string_view::npos
                                             ? std::string()
                                             : percent_decode(part.substr(equals + 1));
      if (!name || !value) {
        return fail(input_error(ErrorCode::kInvalidQuery,
                                "Malformed percent-encoding in the query string"));
      }
      params.emplace_back(std::move(*name), std::move(*value));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return params;
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse module_health(std::string_view module) {
  JsonWriter out;
  out.begin_object().key("status").string("ok").key("module").string(module).end_object();
  return json_response(200, out.take());
}

HttpResponse method_not_allowed(std::string_view method, std::string_view path,
                                std::string_view allow) {
  HttpResponse response = error_response(
      ErrorCode::kMethodNotAllowed,
      "Cannot " + std::string(method) + " " + std::string(path) + "; allowed: " + std::string(allow));
  response.headers.emplace_back("Allow", std::string(allow));
  return response;
}

}  // namespace

HttpResponse error_response(ErrorCode code, std::string_view message) {
  HttpResponse response = json_response(http_status(code), encode_error(code, message));
  if (response.status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

RequestHandler::RequestHandler(WalletService& service, IdGenerator& ids, ReadSideAccess read_side,
                               KafkaMonitor* kafka)
    : service_(service), ids_(ids), read_side_(read_side), kafka_(kafka) {}

// The client's correlation id when it is sane (1-128 printable ASCII characters), otherwise a
// fresh one; every response echoes it.
std::string RequestHandler::correlation_id_for(std::optional<std::string_view> sent) {
  if (sent && !sent->empty() && sent->size() <= kCorrelationIdLengthMax &&
      is_valid_idempotency_key(*sent)) {
    return std::string(*sent);
  }
  return ids_.next_uuid();
}

HttpResponse RequestHandler::rejection(std::optional<std::string_view> correlation_id,
                                       ErrorCode code, std::string_view message) {
  HttpResponse response = error_response(code, message);
  response.headers.emplace_back("X-Correlation-Id", correlation_id_for(correlation_id));
  return response;
}

std::optional<HttpResponse> RequestHandler::handle(const HttpRequest& request,
                                                   std::function<void(HttpResponse&&)> respond) {
  const std::string correlation_id = correlation_id_for(request.correlation_id);
  std::optional<HttpResponse> response = route(request, correlation_id, respond);
  if (response) response->headers.emplace_back("X-Correlation-Id", correlation_id);
  return response;
}

std::optional<HttpResponse> RequestHandler::route(const HttpRequest& request,
                                                  const std::string& correlation_id,
                                                  std::function<void(HttpResponse&&)>& respond) {
  auto finish = [](HttpResponse&& response) { return std::optional<HttpResponse>(std::move(response)); };

  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  const std::string_view method = request.method;
  const bool is_get = method == "GET";
  const bool is_post = method == "POST";
  if (path.empty() || path.front() != '/') {
    return finish(error_response(ErrorCode::kRouteNotFound, "Cannot " + std::string(method) + " " +
                                                                std::string(path)));
  }
  const std::vector<std::string_view> segments = split_path(path);
  const std::size_t n = segments.size();

  // Fixed routes.
  if (n == 0) {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
    HttpResponse hello;
    hello.body = "Hello World!";
    hello.content_type = "text/html; charset=utf-8";
    return finish(std::move(hello));
  }
  if (n == 1 && segments[0] == "health") {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
    return finish(health());
  }
  if (segments[0] == "health" && n >= 2 && n <= 3 && segments[1] == "kafka" &&
      (n == 2 || segments[2] == "stats")) {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
    if (kafka_ == nullptr) {
      JsonWriter out;
      out.begin_object().key("status").string("disabled").end_object();
      return finish(json_response(200, out.take()));
    }
    if (n == 3) return finish(kafka_stats());
    return kafka_health(correlation_id, respond);
  }
  if (n == 2 && segments[1] == "health" &&
      (segments[0] == "ledger" || segments[0] == "users" || segments[0] == "integration")) {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
    return finish(module_health(segments[0] == "users" ? "user" : segments[0]));
  }

  const std::size_t question = target.find('?');
  const std::string_view query_string =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  auto not_found = [&] {
    return finish(error_response(ErrorCode::kRouteNotFound,
                                 "Cannot " + std::string(method) + " " + std::string(path)));
  };
  // Parses the query string and minPosition, then builds and submits one read-side query.
  auto read_query = [&](ProjectorId projector, auto&& build) -> std::optional<HttpResponse> {
    auto params = parse_query_string(query_string);
    if (!params) return finish(error_response(params.error().code, params.error().message));
    auto min_position = parse_min_position(params.value());
    if (!min_position)
      return finish(error_response(ErrorCode::kInvalidQuery, min_position.error()));
    Decoded<QueryFunction> query = build(params.value());
    if (!query) return finish(error_response(query.error().code, query.error().message));
    return submit_query(projector, min_position.value(), std::move(query).value(), correlation_id,
                        respond);
  };
  auto invalid_query = [](const std::string& message) {
    return fail(input_error(ErrorCode::kInvalidQuery, message));
  };

  // Ledger routes (read side).
  if (segments[0] == "ledger") {
    const bool wallet_route =
        (n == 3 || n == 4) && segments[1] == "wallet" && (n == 3 || segments[3] == "summary");
    const bool reference_route = n == 3 && segments[1] == "reference";
    const bool all_route = n == 2 && segments[1] == "transactions";
    if (!wallet_route && !reference_route && !all_route) return not_found();
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
    if (all_route) {
      return read_query(
          ProjectorId::kLedger, [&](const QueryParams& params) -> Decoded<QueryFunction> {
            auto filter = parse_ledger_query(params, std::nullopt);
            if (!filter) return invalid_query(filter.error());
            return QueryFunction([filter = std::move(filter).value()](ReadStore& store) {
              return run_ledger(store, filter);
            });
          });
    }
    if (reference_route) {
      std::optional<std::string> reference = percent_decode(segments[2]);
      if (!reference || !is_plausible_reference_id(*reference)) {
        return finish(error_response(ErrorCode::kInvalidQuery,
                                     "A reference id is 1-148 characters of [A-Za-z0-9._:@-]"));
      }
      return read_query(ProjectorId::kLedger, [&](const QueryParams&) -> Decoded<QueryFunction> {
        return QueryFunction([reference = std::move(*reference)](ReadStore& store) {
          return run_ledger_reference(store, reference);
        });
      });
    }
    auto id = wallet_id_from_path(segments[2]);
    if (!id) return finish(error_response(id.error().code, id.error().message));
    if (n == 4) {
      return read_query(ProjectorId::kLedger, [&](const QueryParams&) -> Decoded<QueryFunction> {
        return QueryFunction([id = std::move(id).value()](ReadStore& store) {
          return run_ledger_summary(store, id);
        });
      });
    }
    return read_query(
        ProjectorId::kLedger, [&](const QueryParams& params) -> Decoded<QueryFunction> {
          auto filter = parse_ledger_query(params, std::move(id).value());
          if (!filter) return invalid_query(filter.error());
          return QueryFunction([filter = std::move(filter).value()](ReadStore& store) {
            return run_ledger(store, filter);
          });
        });
  }

  // Wallet routes.
  if (segments[0] != "wallets" || n > 3) return not_found();
  if (n == 1) {
    if (is_get) {
      return read_query(
          ProjectorId::kReadModel, [&](const QueryParams& params) -> Decoded<QueryFunction> {
            auto query = parse_wallet_list_query(params);
            if (!query) return invalid_query(query.error());
            return QueryFunction([query = std::move(query).value()](ReadStore& store) {
              return run_wallet_list(store, query);
            });
          });
    }
    if (!is_post) return finish(method_not_allowed(method, path, "GET, POST"));
  } else if (n == 2) {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
  } else if (segments[2] == "events") {
    if (!is_get) return finish(method_not_allowed(method, path, "GET"));
  } else if (segments[2] == "credit" || segments[2] == "debit" || segments[2] == "transfer") {
    if (!is_post) return finish(method_not_allowed(method, path, "POST"));
  } else {
    return not_found();
  }

  std::optional<std::string> path_wallet_id;
  if (n >= 2) {
    auto id = wallet_id_from_path(segments[1]);
    if (!id) return finish(error_response(id.error().code, id.error().message));
    path_wallet_id = std::move(id).value();
  }

  if (is_get && n == 3) {
    return read_query(ProjectorId::kWalletEvents,
                      [&](const QueryParams& params) -> Decoded<QueryFunction> {
                        auto query = parse_wallet_events_query(params, *path_wallet_id);
                        if (!query) return invalid_query(query.error());
                        return QueryFunction([query = std::move(query).value()](ReadStore& store) {
                          return run_wallet_events(store, query);
                        });
                      });
  }

  if (is_get) {
    // ?atVersion=N or ?at=<time>: the snapshot as it was then, from the read side. Otherwise the
    // authoritative state of the write side (read-your-writes).
    auto params = parse_query_string(query_string);
    if (!params) return finish(error_response(params.error().code, params.error().message));
    auto time_travel = parse_time_travel_query(params.value(), *path_wallet_id);
    if (!time_travel) return finish(error_response(ErrorCode::kInvalidQuery, time_travel.error()));
    if (time_travel.value()) {
      return read_query(
          ProjectorId::kWalletEvents, [&](const QueryParams&) -> Decoded<QueryFunction> {
            return QueryFunction([query = std::move(*time_travel.value())](ReadStore& store) {
              return run_time_travel(store, query);
            });
          });
    }
    // The write side already reflects every acknowledged command, so a minPosition needs no
    // wait here; a malformed one is still refused, as on every read endpoint.
    if (auto min_position = parse_min_position(params.value()); !min_position) {
      return finish(error_response(ErrorCode::kInvalidQuery, min_position.error()));
    }
    if (service_.shared_store()) {
      // Other instances commit to the same store: the writer reads the wallet from it, so the
      // answer reflects every write acknowledged by any instance.
      service_.read_wallet(
          std::move(*path_wallet_id),
          [respond = std::move(respond), correlation_id](Reply&& reply) {
            HttpResponse response = json_response(reply.status, std::move(reply.body));
            if (response.status == 503) response.headers.emplace_back("Retry-After", "1");
            response.headers.emplace_back("X-Correlation-Id", correlation_id);
            respond(std::move(response));
          });
      return std::nullopt;
    }
    const std::optional<WalletState> wallet = service_.find_wallet(*path_wallet_id);
    if (!wallet) {
      return finish(error_response(ErrorCode::kWalletNotFound,
                                   "Wallet " + *path_wallet_id + " not found"));
    }
    return finish(json_response(200, encode_snapshot(*wallet)));
  }

  // Commands.
  std::optional<std::string> idempotency_key;
  if (request.idempotency_key && !request.idempotency_key->empty()) {
    if (!is_valid_idempotency_key(*request.idempotency_key)) {
      return finish(error_response(ErrorCode::kInvalidIdempotencyKey,
                                   "Idempotency-Key must be 1-255 printable ASCII characters"));
    }
    idempotency_key = std::string(*request.idempotency_key);
  }
  const CommandRoute command_route = n == 1                      ? CommandRoute::kCreate
                                     : segments[2] == "credit" ? CommandRoute::kCredit
                                     : segments[2] == "debit"  ? CommandRoute::kDebit
                                                               : CommandRoute::kTransfer;
  Decoded<Command> command = decode_command(
      command_route, path_wallet_id ? std::move(*path_wallet_id) : std::string(), request.body);
  if (!command) return finish(error_response(command.error().code, command.error().message));

  service_.submit(
      CommandRequest{std::move(command).value(), std::move(idempotency_key), correlation_id},
      [respond = std::move(respond), correlation_id](Reply&& reply) {
        HttpResponse response = json_response(reply.status, std::move(reply.body));
        if (reply.position > 0) {
          response.headers.emplace_back("X-Wallex-Position", std::to_string(reply.position));
        }
        if (reply.replayed) response.headers.emplace_back("Idempotent-Replayed", "true");
        if (response.status == 503) response.headers.emplace_back("Retry-After", "1");
        response.headers.emplace_back("X-Correlation-Id", correlation_id);
        respond(std::move(response));
      });
  return std::nullopt;
}

HttpResponse RequestHandler::health() const {
  const ServiceHealth health = service_.health();
  std::vector<ProjectorStatus> projectors;
  if (read_side_.shared_statuses) {
    projectors = read_side_.shared_statuses();
  } else if (read_side_.projections != nullptr) {
    projectors = read_side_.projections->statuses();
  }
  bool ok = health.accepting && !health.store_failed;
  for (const ProjectorStatus& projector : projectors) ok = ok && !projector.stuck;

  JsonWriter out;
  out.begin_object();
  out.key("status").string(ok ? "ok" : "unavailable");
  out.key("store").begin_object();
  out.key("status").string(health.store_failed ? "failed" : "ok");
  out.key("wallets").integer(static_cast<std::int64_t>(health.wallet_count));
  out.key("lastPosition").integer(health.last_position);
  out.key("commits").integer(static_cast<std::int64_t>(health.commits));
  out.key("commands").integer(static_cast<std::int64_t>(health.commands));
  out.end_object();
  out.key("writer").begin_object();
  out.key("accepting").boolean(health.accepting);
  out.key("queueLength").integer(static_cast<std::int64_t>(health.queue_length));
  out.key("unsyncedBatches").integer(static_cast<std::int64_t>(health.unsynced_batches));
  out.end_object();
  if (read_side_.projections != nullptr || read_side_.shared_statuses) {
    out.key("projections").begin_object();
    for (const ProjectorStatus& projector : projectors) {
      out.key(projector_name(projector.id)).begin_object();
      out.key("status").string(projector.stuck                      ? "stuck"
                               : projector.consecutive_failures > 0 ? "retrying"
                                                                    : "ok");
      out.key("position").integer(projector.position);
      out.key("positionsBehind").integer(projector.positions_behind);
      const std::string millis = std::to_string(projector.ms_behind % 1000);
      out.key("secondsBehind")
          .number_text(std::to_string(projector.ms_behind / 1000) + "." +
                       std::string(3 - millis.size(), '0') + millis);
      if (!projector.last_error.empty()) out.key("error").string(projector.last_error);
      out.end_object();
    }
    out.end_object();
  }
  if (read_side_.projection_lease_holder) {
    out.key("projectionLease").begin_object();
    out.key("holder").string(read_side_.projection_lease_holder());
    out.key("thisInstance").string(read_side_.instance_name);
    out.end_object();
  }
  if (kafka_ != nullptr) {
    // Informational: a Kafka outage delays publishing but never stops commands, so it does not
    // make the service unhealthy (GET /health/kafka is the probe for the broker).
    const RelayStats relay = kafka_->stats();
    out.key("kafka").begin_object();
    out.key("relay").string(relay.state);
    out.key("publishedPosition").integer(relay.published_position);
    out.key("backlog").integer(relay.backlog);
    out.end_object();
  }
  out.end_object();
  HttpResponse response = json_response(ok ? 200 : 503, out.take());
  if (!ok) response.headers.emplace_back("Retry-After", "1");
  return response;
}

namespace {

std::string seconds_text(std::int64_t ms) {
  const std::string millis = std::to_string(ms % 1000);
  return std::to_string(ms / 1000) + "." + std::string(3 - millis.size(), '0') + millis;
}

}  // namespace

HttpResponse RequestHandler::kafka_stats() const {
  const RelayStats relay = kafka_->stats();
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.1f", relay.publish_rate_per_s);
  JsonWriter out;
  out.begin_object();
  out.key("status").string(relay.state);
  out.key("publishedPosition").integer(relay.published_position);
  out.key("savedPosition").integer(relay.saved_position);
  out.key("headPosition").integer(relay.head_position);
  out.key("backlog").integer(relay.backlog);
  out.key("inFlight").integer(relay.in_flight);
  out.key("oldestUnpublishedAgeSeconds").number_text(seconds_text(relay.oldest_unpublished_age_ms));
  out.key("publishRatePerSecond").number_text(rate);
  out.key("publishedEvents").integer(static_cast<std::int64_t>(relay.published_events));
  out.key("deliveryErrors").integer(static_cast<std::int64_t>(relay.delivery_errors));
  out.key("ackLagMs").begin_object();
  out.key("p50").integer(relay.ack_lag_p50_ms);
  out.key("p99").integer(relay.ack_lag_p99_ms);
  out.key("max").integer(relay.ack_lag_max_ms);
  out.end_object();
  if (relay.last_error.empty()) {
    out.key("lastError").null();
  } else {
    out.key("lastError").string(relay.last_error);
  }
  // The consumer side, as Kafka reports it (refreshed every 2 s; null until known).
  const ConsumerSideStats& consumers = relay.consumers;
  out.key("dlqCount");
  if (consumers.dead_letters >= 0) {
    out.integer(consumers.dead_letters);
  } else {
    out.null();
  }
  out.key("consumerGroups").begin_object();
  for (const GroupLag& group : consumers.groups) {
    out.key(group.group).begin_object();
    out.key("lag");
    if (group.lag >= 0) {
      out.integer(group.lag);
    } else {
      out.null();
    }
    out.key("committedPartitions").integer(group.committed_partitions);
    out.end_object();
  }
  out.end_object();
  out.key("consumerStatsAgeMs");
  if (consumers.age_ms >= 0) {
    out.integer(consumers.age_ms);
  } else {
    out.null();
  }
  if (consumers.last_error.empty()) {
    out.key("consumerStatsError").null();
  } else {
    out.key("consumerStatsError").string(consumers.last_error);
  }
  out.end_object();
  return json_response(200, out.take());
}

std::optional<HttpResponse> RequestHandler::kafka_health(
    const std::string& correlation_id, std::function<void(HttpResponse&&)>& respond) {
  kafka_->check_brokers([respond = std::move(respond), correlation_id](BrokerCheck check) {
    JsonWriter out;
    out.begin_object();
    out.key("status").string(check.ok ? "ok" : "unavailable");
    out.key("brokers").integer(check.brokers);
    out.key("elapsedMs").integer(check.elapsed_ms);
    if (!check.ok) out.key("error").string(check.error);
    out.end_object();
    HttpResponse response = json_response(check.ok ? 200 : 503, out.take());
    if (!check.ok) response.headers.emplace_back("Retry-After", "1");
    response.headers.emplace_back("X-Correlation-Id", correlation_id);
    respond(std::move(response));
  });
  return std::nullopt;
}

std::optional<HttpResponse> RequestHandler::submit_query(
    ProjectorId projector, std::int64_t min_position, QueryFunction query,
    const std::string& correlation_id, std::function<void(HttpResponse&&)>& respond) {
  if (read_side_.queries == nullptr) {
    return error_response(ErrorCode::kStoreUnavailable, "The read side is not running");
  }
  read_side_.queries->submit(projector, min_position, std::move(query),
                             [respond = std::move(respond), correlation_id](QueryReply&& reply) {
                               HttpResponse response =
                                   json_response(reply.status, std::move(reply.body));
                               response.headers = std::move(reply.headers);
                               response.headers.emplace_back("X-Correlation-Id", correlation_id);
                               respond(std::move(response));
                             });
  return std::nullopt;
}

}  // namespace wallex
