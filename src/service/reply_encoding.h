// The JSON bodies the service answers with, and the fingerprint of a command. Both are stored in
// idempotency records, so their exact bytes are part of the stored format: change them only with
// a schema version bump.
#pragma once

#include <string>
#include <string_view>

#include "domain/errors.h"
#include "domain/wallet.h"

namespace wallex {

// {"id","ownerId","balance","version","createdAt","updatedAt"} in this order.
std::string encode_snapshot(const WalletState& wallet);
// {"fromWallet":snapshot,"toWallet":snapshot,"transferId":id}
std::string encode_transfer(const WalletState& from, const WalletState& to,
                            std::string_view transfer_id);
// {"statusCode","message","error","code"}
std::string encode_error(ErrorCode code, std::string_view message);

// Canonical text of what a command asks for: equal fingerprints mean the same request. Invented
// values (the transfer id) are not part of it.
std::string fingerprint(const Command& command);

}  // namespace wallex
