#include "bench/replies.h"

#include <array>
#include <charconv>
#include <optional>

namespace wallex::bench {
namespace {

constexpr std::array<std::string_view, 6> kSnapshotKeys = {"id",      "ownerId",   "balance",
                                                           "version", "createdAt", "updatedAt"};

// What a failure message calls the snapshot under `prefix`.
std::string snapshot_name(std::string_view prefix) {
  return prefix.empty() ? std::string("snapshot") : std::string(prefix);
}

// The snapshot under `prefix` ("" for the top level, "fromWallet" inside a transfer reply).
Result<WalletSnapshot, std::string> snapshot_at(const JsonFields& fields, std::string_view prefix) {
  // Exactly the six keys, each a scalar: anything else breaks the contract.
  std::size_t keys_seen = 0;
  for (const JsonScalar& scalar : fields.scalars()) {
    const std::optional<std::string_view> below = JsonFields::path_below(scalar.path, prefix);
    if (!below) continue;
    const std::string_view path = *below;
    bool known = false;
    for (std::string_view key : kSnapshotKeys) known = known || key == path;
    if (!known) {
      if (prefix.empty()) return fail("snapshot has an unexpected key " + std::string(path));
      continue;  // a key of the enclosing reply is checked by its own decoder
    }
    ++keys_seen;
  }
  if (keys_seen != kSnapshotKeys.size()) {
    return fail(snapshot_name(prefix) +
                " must have exactly id, ownerId, balance, version, createdAt, updatedAt");
  }

  WalletSnapshot snapshot;
  const JsonScalar* id = fields.find(prefix, "id");
  if (id->kind != JsonScalarKind::kString) return fail(snapshot_name(prefix) + ".id is not a string");
  snapshot.id = id->text;

  const JsonScalar* balance = fields.find(prefix, "balance");
  if (balance->kind != JsonScalarKind::kNumber) {
    return fail(snapshot_name(prefix) + ".balance is not a number");
  }
  auto money = Money::parse(balance->text);
  if (!money) return fail(snapshot_name(prefix) + ".balance is not exact money: " + balance->text);
  snapshot.balance = money.value();

  const JsonScalar* version = fields.find(prefix, "version");
  const std::string& text = version->text;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), snapshot.version);
  if (version->kind != JsonScalarKind::kNumber || ec != std::errc() ||
      end != text.data() + text.size() || snapshot.version < 0) {
    return fail(snapshot_name(prefix) + ".version is not a non-negative integer: " + text);
  }
  return snapshot;
}

}  // namespace

Result<WalletSnapshot, std::string> ReplyDecoder::wallet_snapshot(std::string_view body) {
  if (auto parsed = fields_.parse_into(body); !parsed) {
    return fail("reply is not JSON: " + parsed.error());
  }
  return snapshot_at(fields_, "");
}

Result<TransferReply, std::string> ReplyDecoder::transfer_reply(std::string_view body) {
  if (auto parsed = fields_.parse_into(body); !parsed) {
    return fail("reply is not JSON: " + parsed.error());
  }
  for (const JsonScalar& scalar : fields_.scalars()) {
    const std::string_view path = scalar.path;
    if (!path.starts_with("fromWallet.") && !path.starts_with("toWallet.") &&
        path != "transferId") {
      return fail("transfer reply has an unexpected key " + scalar.path);
    }
  }
  auto from = snapshot_at(fields_, "fromWallet");
  if (!from) return fail(from.error());
  auto to = snapshot_at(fields_, "toWallet");
  if (!to) return fail(to.error());
  const JsonScalar* transfer_id = fields_.find("transferId");
  if (transfer_id == nullptr || transfer_id->kind != JsonScalarKind::kString ||
      transfer_id->text.empty()) {
    return fail(std::string("transfer reply lacks transferId"));
  }
  return TransferReply{std::move(from).value(), std::move(to).value(), transfer_id->text};
}

std::string ReplyDecoder::error_code(std::string_view body) {
  if (!fields_.parse_into(body)) return "";
  const JsonScalar* code = fields_.find("code");
  if (code == nullptr || code->kind != JsonScalarKind::kString) return "";
  return code->text;
}

Result<WalletSnapshot, std::string> decode_wallet_snapshot(std::string_view body) {
  return ReplyDecoder().wallet_snapshot(body);
}

Result<TransferReply, std::string> decode_transfer_reply(std::string_view body) {
  return ReplyDecoder().transfer_reply(body);
}

std::string error_code_of(std::string_view body) { return ReplyDecoder().error_code(body); }

}  // namespace wallex::bench
