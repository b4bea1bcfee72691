// The JSON bodies the service answers with, the fingerprint of a command, and the form in which
// an idempotency record keeps a reply. Fingerprints and error bodies are stored as they are, and a
// replay rebuilds snapshot and transfer bodies with these encoders, so their exact bytes are part
// of the stored format: change them only with a schema version bump.
#pragma once

#include <optional>
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

// The body an idempotency record keeps of a reply. A snapshot or transfer reply is kept as the
// few values that change with each command ("s|balance|version|updatedAt", "t|<the same for
// the source>|<for the destination>|transferId", balances in minor units, times in ms): the
// rest — the wallets' ids, owners and creation times — never changes, and the request that
// replays it names the same wallets (its fingerprint matched). Any other reply is kept as its
// JSON, and so are the records of Wallex versions before this form (every JSON body starts with
// '{'). A fifth to a tenth of the JSON's bytes, in the store's largest table.
std::string stored_snapshot(const WalletState& wallet);
std::string stored_transfer(const WalletState& from, const WalletState& to,
                            std::string_view transfer_id);
// The reply body a stored one stands for, byte for byte what the original request was answered:
// JSON as it is; a compact form completed from `command` (the replaying request) and `lookup`
// (the wallets' current states, read after the record: WalletService::attempt). nullopt when
// it cannot be (a malformed body, or a wallet the store no longer has: a damaged store).
std::optional<std::string> replay_body(std::string_view stored, const Command& command,
                                       const WalletLookup& lookup);

}  // namespace wallex
