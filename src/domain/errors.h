// Every failure a client can see, with its HTTP status and its stable machine-readable code.
// This table is the single source of truth for both; docs/http-api.md lists it for clients.
#pragma once

#include <string>
#include <string_view>

namespace wallex {

enum class ErrorCode {
  // 400
  kMalformedRequest,
  kInvalidJson,
  kInvalidBody,
  kMissingField,
  kInvalidField,
  kInvalidAmount,
  kAmountTooLarge,
  kInvalidWalletId,
  kInvalidOwnerId,
  kInvalidIdempotencyKey,
  kInsufficientFunds,
  kSameWalletTransfer,
  kBalanceLimitExceeded,
  kInvalidQuery,  // a query parameter of a read-side endpoint
  // 404
  kWalletNotFound,
  kRouteNotFound,
  // 405
  kMethodNotAllowed,
  // 409
  kWalletAlreadyExists,
  kIdempotencyKeyReused,
  kIdempotencyRequestInFlight,
  // 413, 431
  kPayloadTooLarge,
  kHeadersTooLarge,
  // 5xx
  kInternalError,
  kStoreUnavailable,
  kStoreFull,  // the disk is full: the request was not applied
  kOverloaded,
  kShuttingDown,
  kProjectionBehind,  // minPosition not reached within the wait
};

int http_status(ErrorCode code);
std::string_view code_name(ErrorCode code);      // "INSUFFICIENT_FUNDS"
std::string_view reason_phrase(int http_status);  // "Bad Request"

struct DomainError {
  ErrorCode code;
  std::string message;
};

}  // namespace wallex
