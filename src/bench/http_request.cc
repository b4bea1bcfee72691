#include "bench/http_request.h"

namespace wallex::bench {

void append_http_request(std::string& out, const HttpRequestParts& request) {
  out.append(request.method);
  out += ' ';
  out.append(request.target);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(request.host);
  out.append("\r\n");
  if (!request.idempotency_key.empty()) {
    out.append("Idempotency-Key: ");
    out.append(request.idempotency_key);
    out.append("\r\n");
  }
  if (!request.body.empty()) {
    out.append("Content-Type: application/json\r\nContent-Length: ");
    out.append(std::to_string(request.body.size()));
    out.append("\r\n\r\n");
    out.append(request.body);
  } else {
    out.append("\r\n");
  }
}

}  // namespace wallex::bench
