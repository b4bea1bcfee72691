// Fuzzes the request-to-command path: the wallet id of a command's path segment and the bytes of
// its body, through wallet_id_from_path and decode_command (the functions request_handler uses
// for every POST). Input layout: byte 0 chooses the route (create, credit, debit, transfer), the
// bytes up to the first '\n' are the path segment, the rest is the body.
// Properties, for every input:
// - nothing crashes, throws or reads out of bounds;
// - a refusal is a 400-class error with a message;
// - an accepted command is of the route's kind, its ids are valid ids (the path's wallet for
//   credit, debit and the source of a transfer), its amount is within the balance limit, its
//   description at most kDescriptionLengthMax bytes;
// - a valid path id, percent-encoded byte by byte, decodes to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "domain/ids.h"
#include "fuzz_check.h"
#include "http/command_decoder.h"

namespace {

using namespace wallex;

void check_amount(Money amount) {
  FUZZ_CHECK(amount.minor() <= Money::kBalanceMaxMinor);
  FUZZ_CHECK(amount.minor() >= -Money::kBalanceMaxMinor);
}

void check_description(const std::optional<std::string>& description) {
  if (description) FUZZ_CHECK(description->size() <= kDescriptionLengthMax);
}

void check_percent_round_trip(const std::string& id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (const char c : id) {
    const auto byte = static_cast<unsigned char>(c);
    encoded += '%';
    encoded += kHex[byte >> 4];
    encoded += kHex[byte & 0x0F];
  }
  auto decoded = wallet_id_from_path(encoded);
  FUZZ_CHECK(decoded.ok());
  FUZZ_CHECK(decoded.value() == id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto route = static_cast<CommandRoute>(data[0] % 4);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t newline = rest.find('\n');
  const std::string_view segment = rest.substr(0, newline);
  const std::string_view body =
      newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);

  std::string path_wallet_id;
  if (route != CommandRoute::kCreate) {
    auto id = wallet_id_from_path(segment);
    if (!id) {
      FUZZ_CHECK(id.error().code == ErrorCode::kInvalidWalletId);
      FUZZ_CHECK(http_status(id.error().code) == 400);
      return 0;
    }
    FUZZ_CHECK(is_valid_id(id.value()));
    check_percent_round_trip(id.value());
    path_wallet_id = std::move(id).value();
  }

  auto command = decode_command(route, path_wallet_id, body);
  if (!command) {
    FUZZ_CHECK(http_status(command.error().code) == 400);
    FUZZ_CHECK(!command.error().message.empty());
    return 0;
  }
  switch (route) {
    case CommandRoute::kCreate: {
      const auto* create = std::get_if<CreateWallet>(&command.value());
      FUZZ_CHECK(create != nullptr);
      FUZZ_CHECK(is_valid_id(create->wallet_id));
      FUZZ_CHECK(is_valid_id(create->owner_id));
      check_amount(create->initial_balance);
      break;
    }
    case CommandRoute::kCredit: {
      const auto* credit = std::get_if<CreditWallet>(&command.value());
      FUZZ_CHECK(credit != nullptr);
      FUZZ_CHECK(credit->wallet_id == path_wallet_id);
      check_amount(credit->amount);
      check_description(credit->description);
      break;
    }
    case CommandRoute::kDebit: {
      const auto* debit = std::get_if<DebitWallet>(&command.value());
      FUZZ_CHECK(debit != nullptr);
      FUZZ_CHECK(debit->wallet_id == path_wallet_id);
      check_amount(debit->amount);
      check_description(debit->description);
      break;
    }
    case CommandRoute::kTransfer: {
      const auto* transfer = std::get_if<TransferMoney>(&command.value());
      FUZZ_CHECK(transfer != nullptr);
      FUZZ_CHECK(transfer->from_wallet_id == path_wallet_id);
      FUZZ_CHECK(is_valid_id(transfer->to_wallet_id));
      check_amount(transfer->amount);
      check_description(transfer->description);
      break;
    }
  }
  return 0;
}
