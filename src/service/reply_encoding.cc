#include "service/reply_encoding.h"

#include "common/time_format.h"
#include "json/json_writer.h"

namespace wallex {
namespace {

void write_snapshot(JsonWriter& out, const WalletState& wallet) {
  out.begin_object();
  out.key("id").string(wallet.id);
  out.key("ownerId").string(wallet.owner_id);
  out.key("balance").number_text(wallet.balance.to_json_number());
  out.key("version").integer(wallet.version);
  out.key("createdAt").string(format_iso8601_ms(wallet.created_at_ms));
  out.key("updatedAt").string(format_iso8601_ms(wallet.updated_at_ms));
  out.end_object();
}

// Length-prefixed fields: no choice of field values can make two different commands collide.
void add_field(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += ';';
}

void add_description(std::string& out, const std::optional<std::string>& description) {
  if (description) {
    add_field(out, "d");
    add_field(out, *description);
  } else {
    add_field(out, "-");
  }
}

}  // namespace

std::string encode_snapshot(const WalletState& wallet) {
  JsonWriter out;
  write_snapshot(out, wallet);
  return out.take();
}

std::string encode_transfer(const WalletState& from, const WalletState& to,
                            std::string_view transfer_id) {
  JsonWriter out;
  out.begin_object();
  out.key("fromWallet");
  write_snapshot(out, from);
  out.key("toWallet");
  write_snapshot(out, to);
  out.key("transferId").string(transfer_id);
  out.end_object();
  return out.take();
}

std::string encode_error(ErrorCode code, std::string_view message) {
  const int status = http_status(code);
  JsonWriter out;
  out.begin_object();
  out.key("statusCode").integer(status);
  out.key("message").string(message);
  out.key("error").string(reason_phrase(status));
  out.key("code").string(code_name(code));
  out.end_object();
  return out.take();
}

std::string fingerprint(const Command& command) {
  std::string out;
  std::visit(
      [&](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateWallet>) {
          add_field(out, "create");
          add_field(out, c.wallet_id);
          add_field(out, c.owner_id);
          add_field(out, std::to_string(c.initial_balance.minor()));
        } else if constexpr (std::is_same_v<T, CreditWallet> || std::is_same_v<T, DebitWallet>) {
          add_field(out, std::is_same_v<T, CreditWallet> ? "credit" : "debit");
          add_field(out, c.wallet_id);
          add_field(out, std::to_string(c.amount.minor()));
          add_description(out, c.description);
        } else {
          add_field(out, "transfer");
          add_field(out, c.from_wallet_id);
          add_field(out, c.to_wallet_id);
          add_field(out, std::to_string(c.amount.minor()));
          add_description(out, c.description);
        }
      },
      command);
  return out;
}

}  // namespace wallex
