#include "service/reply_encoding.h"

#include <charconv>
#include <cstdint>
#include <vector>

#include "common/time_format.h"
#include "json/json_writer.h"

namespace wallex {
namespace {

void write_snapshot(JsonWriter& out, const WalletState& wallet) {
  out.begin_object();
  out.key("id").string(wallet.id);
  out.key("ownerId").string(wallet.owner_id);
  out.key("balance").number_text(wallet.balance.json_number_text().view());
  out.key("version").integer(wallet.version);
  out.key("createdAt").string(Iso8601Ms(wallet.created_at_ms).view());
  out.key("updatedAt").string(Iso8601Ms(wallet.updated_at_ms).view());
  out.end_object();
}

void add_integer(std::string& out, std::int64_t value) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
}

// Length-prefixed fields: no choice of field values can make two different commands collide.
void add_field(std::string& out, std::string_view value) {
  add_integer(out, static_cast<std::int64_t>(value.size()));
  out += ':';
  out += value;
  out += ';';
}

void add_integer_field(std::string& out, std::int64_t value) {
  char digits[24];
  add_field(out,
            std::string_view(digits, std::to_chars(digits, digits + sizeof digits, value).ptr));
}

void add_description(std::string& out, const std::optional<std::string>& description) {
  if (description) {
    add_field(out, "d");
    add_field(out, *description);
  } else {
    add_field(out, "-");
  }
}

// "|balance|version|updatedAt" of a wallet, for the stored forms.
void add_changing(std::string& out, const WalletState& wallet) {
  out += '|';
  add_integer(out, wallet.balance.minor());
  out += '|';
  add_integer(out, wallet.version);
  out += '|';
  add_integer(out, wallet.updated_at_ms);
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::vector<std::string_view> split_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t bar = text.find('|', start);
    fields.push_back(text.substr(start, bar == std::string_view::npos ? bar : bar - start));
    if (bar == std::string_view::npos) return fields;
    start = bar + 1;
  }
}

// The wallet `id` as it was after the stored command: its current state with the values that
// change taken from fields[0..2] (balance, version, updatedAt).
std::optional<WalletState> wallet_then(std::string_view id, const WalletLookup& lookup,
                                       const std::string_view* fields) {
  const WalletState* now = lookup(id);
  const auto balance = parse_integer(fields[0]);
  const auto version = parse_integer(fields[1]);
  const auto updated_at = parse_integer(fields[2]);
  if (now == nullptr || !balance || *balance < 0 || !version || !updated_at) return std::nullopt;
  WalletState then = *now;
  then.balance = Money::from_minor(*balance);
  then.version = *version;
  then.updated_at_ms = *updated_at;
  return then;
}

}  // namespace

std::string stored_snapshot(const WalletState& wallet) {
  std::string out;
  out.reserve(64);
  out += 's';
  add_changing(out, wallet);
  return out;
}

std::string stored_transfer(const WalletState& from, const WalletState& to,
                            std::string_view transfer_id) {
  std::string out;
  out.reserve(128);
  out += 't';
  add_changing(out, from);
  add_changing(out, to);
  out += '|';
  out += transfer_id;
  return out;
}

std::optional<std::string> replay_body(std::string_view stored, const Command& command,
                                       const WalletLookup& lookup) {
  if (stored.empty() || stored.front() == '{') return std::string(stored);
  const std::vector<std::string_view> fields = split_fields(stored);
  if (fields.front() == "s" && fields.size() == 4) {
    const std::string_view id = std::visit(
        [](const auto& c) -> std::string_view {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, TransferMoney>) {
            return {};
          } else {
            return c.wallet_id;
          }
        },
        command);
    if (id.empty()) return std::nullopt;
    auto wallet = wallet_then(id, lookup, &fields[1]);
    if (!wallet) return std::nullopt;
    return encode_snapshot(*wallet);
  }
  if (fields.front() == "t" && fields.size() == 8) {
    const auto* transfer = std::get_if<TransferMoney>(&command);
    if (transfer == nullptr || fields[7].empty()) return std::nullopt;
    auto from = wallet_then(transfer->from_wallet_id, lookup, &fields[1]);
    auto to = wallet_then(transfer->to_wallet_id, lookup, &fields[4]);
    if (!from || !to) return std::nullopt;
    return encode_transfer(*from, *to, fields[7]);
  }
  return std::nullopt;
}

// Room for a snapshot's usual ~200 bytes, and for a transfer's two.
constexpr std::size_t kSnapshotCapacity = 256;

std::string encode_snapshot(const WalletState& wallet) {
  JsonWriter out(kSnapshotCapacity);
  write_snapshot(out, wallet);
  return out.take();
}

std::string encode_transfer(const WalletState& from, const WalletState& to,
                            std::string_view transfer_id) {
  JsonWriter out(2 * kSnapshotCapacity);
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
  out.reserve(128);
  std::visit(
      [&](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateWallet>) {
          add_field(out, "create");
          add_field(out, c.wallet_id);
          add_field(out, c.owner_id);
          add_integer_field(out, c.initial_balance.minor());
        } else if constexpr (std::is_same_v<T, CreditWallet> || std::is_same_v<T, DebitWallet>) {
          add_field(out, std::is_same_v<T, CreditWallet> ? "credit" : "debit");
          add_field(out, c.wallet_id);
          add_integer_field(out, c.amount.minor());
          add_description(out, c.description);
        } else {
          add_field(out, "transfer");
          add_field(out, c.from_wallet_id);
          add_field(out, c.to_wallet_id);
          add_integer_field(out, c.amount.minor());
          add_description(out, c.description);
        }
      },
      command);
  return out;
}

}  // namespace wallex
