// Command decoding: turns the wallet id of a command's path and the bytes of its body into a
// Command, or into the exact 4xx error a client gets. Pure text in, value out: no I/O, no state,
// no transport, so request_handler uses it and tests/fuzz drives it with arbitrary bytes.
//
// Contract: every input, however hostile, yields either a Command whose ids are valid and whose
// amounts are within the documented limits, or an InputError with a 400-class ErrorCode. Nothing
// throws and nothing reads outside the given views.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "domain/errors.h"
#include "domain/wallet.h"

namespace wallex {

// Why a request was refused before it reached the service.
struct InputError {
  ErrorCode code;
  std::string message;
};

// The four command routes: POST /wallets and POST /wallets/{id}/{credit,debit,transfer}.
enum class CommandRoute { kCreate, kCredit, kDebit, kTransfer };

// "%41b" -> "Ab"; nullopt when a '%' is not followed by two hex digits. Any byte may result
// (including NUL and invalid UTF-8): callers validate what they decoded.
std::optional<std::string> percent_decode(std::string_view text);

// The wallet id of a path segment, percent-decoded and validated (INVALID_WALLET_ID otherwise).
Result<std::string, InputError> wallet_id_from_path(std::string_view segment);

// The command a body asks for. `path_wallet_id` is the (already validated) wallet of the path;
// it is ignored for kCreate, whose wallet id is in the body.
Result<Command, InputError> decode_command(CommandRoute route, std::string path_wallet_id,
                                           std::string_view body);

}  // namespace wallex
