// Decoding of the Wallex replies the bench relies on (docs: /work/shared/DESIGN.md §2):
//   wallet snapshot  {id, ownerId, balance, version, createdAt, updatedAt} — exactly these keys,
//                    balance a JSON number with at most two decimals;
//   transfer reply   {fromWallet: snapshot, toWallet: snapshot, transferId};
//   error            {statusCode, message, error, code}.
// A reply that breaks the contract is a failure of the run, so decoding is strict.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bench/json_fields.h"
#include "common/result.h"
#include "domain/money.h"

namespace wallex::bench {

struct WalletSnapshot {
  std::string id;
  Money balance;
  std::int64_t version = 0;
};

struct TransferReply {
  WalletSnapshot from;
  WalletSnapshot to;
  std::string transfer_id;
};

// Decodes replies into buffers it keeps from one reply to the next (a generator thread decodes
// every reply it gets: one decoder per thread). Not thread-safe.
class ReplyDecoder {
 public:
  Result<WalletSnapshot, std::string> wallet_snapshot(std::string_view body);
  Result<TransferReply, std::string> transfer_reply(std::string_view body);
  // The `code` of a Wallex error body ("INSUFFICIENT_FUNDS"), or "" when there is none.
  std::string error_code(std::string_view body);

 private:
  JsonFields fields_;
};

// The same with a decoder of their own.
Result<WalletSnapshot, std::string> decode_wallet_snapshot(std::string_view body);
Result<TransferReply, std::string> decode_transfer_reply(std::string_view body);
std::string error_code_of(std::string_view body);

}  // namespace wallex::bench
