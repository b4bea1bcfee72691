#include "http/command_decoder.h"

#include "domain/ids.h"
#include "json/body_decoder.h"

namespace wallex {
namespace {

template <typename T>
using Decoded = Result<T, InputError>;

InputError input_error(ErrorCode code, std::string message) { return {code, std::move(message)}; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A required string id field of the body.
Decoded<std::string> id_field(const DecodedBody& body, std::string_view name, ErrorCode invalid,
                              std::string_view missing_message) {
  const JsonField* field = body.find(name);
  if (field == nullptr || field->kind == JsonKind::kNull ||
      (field->kind == JsonKind::kString && field->text.empty())) {
    return fail(input_error(ErrorCode::kMissingField, std::string(missing_message)));
  }
  if (field->kind != JsonKind::kString) {
    return fail(input_error(ErrorCode::kInvalidField, std::string(name) + " must be a string, not " +
                                                          std::string(json_kind_name(field->kind))));
  }
  if (!is_valid_id(field->text)) {
    return fail(input_error(invalid, std::string(name) +
                                         " must be 1-128 characters of [A-Za-z0-9._:@-]"));
  }
  return field->text;
}

Decoded<Money> money_field(const JsonField& field, std::string_view name) {
  if (field.kind != JsonKind::kNumber && field.kind != JsonKind::kString) {
    return fail(input_error(ErrorCode::kInvalidAmount,
                            std::string(name) + " must be a number or a decimal string, not " +
                                std::string(json_kind_name(field.kind))));
  }
  auto parsed = Money::parse(field.text);
  if (parsed) return parsed.value();
  switch (parsed.error()) {
    case MoneyParseError::kOutOfRange:
      return fail(input_error(ErrorCode::kAmountTooLarge,
                              std::string(name) + " must not exceed " +
                                  Money::from_minor(Money::kAmountMaxMinor).to_json_number()));
    case MoneyParseError::kTooManyDecimals:
      return fail(input_error(ErrorCode::kInvalidAmount,
                              std::string(name) + " must have at most two decimal places"));
    case MoneyParseError::kNotANumber: break;
  }
  return fail(input_error(ErrorCode::kInvalidAmount,
                          std::string(name) + " must be a decimal number such as 12.50"));
}

Decoded<Money> required_amount(const DecodedBody& body) {
  const JsonField* field = body.find("amount");
  if (field == nullptr || field->kind == JsonKind::kNull) {
    return fail(input_error(ErrorCode::kMissingField, "amount is required"));
  }
  return money_field(*field, "amount");
}

Decoded<std::optional<std::string>> optional_description(const DecodedBody& body) {
  const JsonField* field = body.find("description");
  if (field == nullptr || field->kind == JsonKind::kNull) return std::optional<std::string>();
  if (field->kind != JsonKind::kString) {
    return fail(input_error(ErrorCode::kInvalidField, "description must be a string"));
  }
  if (field->text.size() > kDescriptionLengthMax) {
    return fail(input_error(ErrorCode::kInvalidField,
                            "description must be at most " + std::to_string(kDescriptionLengthMax) +
                                " bytes"));
  }
  return std::optional<std::string>(field->text);
}

Decoded<DecodedBody> decode_body(std::string_view text) {
  auto body = decode_object_body(text);
  if (body) return std::move(body).value();
  const ErrorCode code = body.error().error == BodyDecodeError::kInvalidJson
                             ? ErrorCode::kInvalidJson
                             : ErrorCode::kInvalidBody;
  return fail(input_error(code, body.error().message));
}

Decoded<Command> decode_create(std::string_view text) {
  auto body = decode_body(text);
  if (!body) return fail(body.error());
  constexpr std::string_view kMissing = "walletId and ownerId are required";
  auto wallet_id = id_field(body.value(), "walletId", ErrorCode::kInvalidWalletId, kMissing);
  if (!wallet_id) return fail(wallet_id.error());
  auto owner_id = id_field(body.value(), "ownerId", ErrorCode::kInvalidOwnerId, kMissing);
  if (!owner_id) return fail(owner_id.error());
  Money initial;
  if (const JsonField* field = body.value().find("initialBalance");
      field != nullptr && field->kind != JsonKind::kNull) {
    auto amount = money_field(*field, "initialBalance");
    if (!amount) return fail(amount.error());
    initial = amount.value();
  }
  return Command(CreateWallet{std::move(wallet_id).value(), std::move(owner_id).value(), initial});
}

template <typename MoneyCommand>
Decoded<Command> decode_money_command(std::string wallet_id, std::string_view text) {
  auto body = decode_body(text);
  if (!body) return fail(body.error());
  auto amount = required_amount(body.value());
  if (!amount) return fail(amount.error());
  auto description = optional_description(body.value());
  if (!description) return fail(description.error());
  return Command(MoneyCommand{std::move(wallet_id), amount.value(), std::move(description).value()});
}

Decoded<Command> decode_transfer(std::string from_wallet_id, std::string_view text) {
  auto body = decode_body(text);
  if (!body) return fail(body.error());
  auto to = id_field(body.value(), "toWalletId", ErrorCode::kInvalidWalletId,
                     "toWalletId is required");
  if (!to) return fail(to.error());
  auto amount = required_amount(body.value());
  if (!amount) return fail(amount.error());
  auto description = optional_description(body.value());
  if (!description) return fail(description.error());
  return Command(TransferMoney{std::move(from_wallet_id), std::move(to).value(), amount.value(),
                               std::move(description).value(), {}});
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

Result<std::string, InputError> wallet_id_from_path(std::string_view segment) {
  std::optional<std::string> id = percent_decode(segment);
  if (!id || !is_valid_id(*id)) {
    return fail(input_error(ErrorCode::kInvalidWalletId,
                            "Wallet id in the path must be 1-128 characters of [A-Za-z0-9._:@-]"));
  }
  return std::move(*id);
}

Result<Command, InputError> decode_command(CommandRoute route, std::string path_wallet_id,
                                           std::string_view body) {
  switch (route) {
    case CommandRoute::kCreate: return decode_create(body);
    case CommandRoute::kCredit:
      return decode_money_command<CreditWallet>(std::move(path_wallet_id), body);
    case CommandRoute::kDebit:
      return decode_money_command<DebitWallet>(std::move(path_wallet_id), body);
    case CommandRoute::kTransfer: return decode_transfer(std::move(path_wallet_id), body);
  }
  return fail(input_error(ErrorCode::kInternalError, "unknown command route"));
}

}  // namespace wallex
