#include "domain/errors.h"

namespace wallex {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformedRequest:
    case ErrorCode::kInvalidJson:
    case ErrorCode::kInvalidBody:
    case ErrorCode::kMissingField:
    case ErrorCode::kInvalidField:
    case ErrorCode::kInvalidAmount:
    case ErrorCode::kAmountTooLarge:
    case ErrorCode::kInvalidWalletId:
    case ErrorCode::kInvalidOwnerId:
    case ErrorCode::kInvalidIdempotencyKey:
    case ErrorCode::kInsufficientFunds:
    case ErrorCode::kSameWalletTransfer:
    case ErrorCode::kBalanceLimitExceeded:
    case ErrorCode::kInvalidQuery: return 400;
    case ErrorCode::kWalletNotFound:
    case ErrorCode::kRouteNotFound: return 404;
    case ErrorCode::kMethodNotAllowed: return 405;
    case ErrorCode::kWalletAlreadyExists:
    case ErrorCode::kIdempotencyKeyReused:
    case ErrorCode::kIdempotencyRequestInFlight: return 409;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kHeadersTooLarge: return 431;
    case ErrorCode::kInternalError: return 500;
    case ErrorCode::kStoreUnavailable:
    case ErrorCode::kStoreFull:
    case ErrorCode::kOverloaded:
    case ErrorCode::kShuttingDown:
    case ErrorCode::kProjectionBehind: return 503;
  }
  return 500;
}

std::string_view code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformedRequest: return "MALFORMED_REQUEST";
    case ErrorCode::kInvalidJson: return "INVALID_JSON";
    case ErrorCode::kInvalidBody: return "INVALID_BODY";
    case ErrorCode::kMissingField: return "MISSING_FIELD";
    case ErrorCode::kInvalidField: return "INVALID_FIELD";
    case ErrorCode::kInvalidAmount: return "INVALID_AMOUNT";
    case ErrorCode::kAmountTooLarge: return "AMOUNT_TOO_LARGE";
    case ErrorCode::kInvalidWalletId: return "INVALID_WALLET_ID";
    case ErrorCode::kInvalidOwnerId: return "INVALID_OWNER_ID";
    case ErrorCode::kInvalidIdempotencyKey: return "INVALID_IDEMPOTENCY_KEY";
    case ErrorCode::kInsufficientFunds: return "INSUFFICIENT_FUNDS";
    case ErrorCode::kSameWalletTransfer: return "SAME_WALLET_TRANSFER";
    case ErrorCode::kBalanceLimitExceeded: return "BALANCE_LIMIT_EXCEEDED";
    case ErrorCode::kInvalidQuery: return "INVALID_QUERY";
    case ErrorCode::kWalletNotFound: return "WALLET_NOT_FOUND";
    case ErrorCode::kRouteNotFound: return "ROUTE_NOT_FOUND";
    case ErrorCode::kMethodNotAllowed: return "METHOD_NOT_ALLOWED";
    case ErrorCode::kWalletAlreadyExists: return "WALLET_ALREADY_EXISTS";
    case ErrorCode::kIdempotencyKeyReused: return "IDEMPOTENCY_KEY_REUSED";
    case ErrorCode::kIdempotencyRequestInFlight: return "IDEMPOTENCY_REQUEST_IN_FLIGHT";
    case ErrorCode::kPayloadTooLarge: return "PAYLOAD_TOO_LARGE";
    case ErrorCode::kHeadersTooLarge: return "HEADERS_TOO_LARGE";
    case ErrorCode::kInternalError: return "INTERNAL_ERROR";
    case ErrorCode::kStoreUnavailable: return "STORE_UNAVAILABLE";
    case ErrorCode::kStoreFull: return "STORE_FULL";
    case ErrorCode::kOverloaded: return "OVERLOADED";
    case ErrorCode::kShuttingDown: return "SHUTTING_DOWN";
    case ErrorCode::kProjectionBehind: return "PROJECTION_BEHIND";
  }
  return "INTERNAL_ERROR";
}

std::string_view reason_phrase(int http_status) {
  switch (http_status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

}  // namespace wallex
