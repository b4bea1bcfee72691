#include "projection/rows.h"

#include "common/check.h"

namespace wallex {

std::string_view projector_name(ProjectorId id) {
  switch (id) {
    case ProjectorId::kReadModel:
      return "readModel";
    case ProjectorId::kLedger:
      return "ledger";
    case ProjectorId::kWalletEvents:
      return "walletEvents";
  }
  return "unknown";
}

std::optional<ProjectorId> projector_from_name(std::string_view name) {
  for (const ProjectorId id : kAllProjectors) {
    if (projector_name(id) == name) return id;
  }
  return std::nullopt;
}

std::string_view entry_type_name(EntryType type) {
  switch (type) {
    case EntryType::kCredit:
      return "CREDIT";
    case EntryType::kDebit:
      return "DEBIT";
    case EntryType::kTransferOut:
      return "TRANSFER_OUT";
    case EntryType::kTransferIn:
      return "TRANSFER_IN";
  }
  return "UNKNOWN";
}

std::optional<EntryType> entry_type_from_name(std::string_view name) {
  for (const EntryType type :
       {EntryType::kCredit, EntryType::kDebit, EntryType::kTransferOut, EntryType::kTransferIn}) {
    if (entry_type_name(type) == name) return type;
  }
  return std::nullopt;
}

std::string entry_id_for_position(std::int64_t position) {
  WALLEX_CHECK(position > 0);
  static constexpr char kHex[] = "0123456789abcdef";
  // 18 hex digits (72 bits, of which the position uses at most 63) spread over the three last
  // groups around the version ('8') and variant ('8') nibbles.
  char digits[18];
  auto value = static_cast<std::uint64_t>(position);
  for (int i = 17; i >= 0; --i) {
    digits[i] = kHex[value & 0xf];
    value >>= 4;
  }
  std::string id = "00000000-0000-8";
  id.append(digits, 3);
  id += "-8";
  id.append(digits + 3, 3);
  id += '-';
  id.append(digits + 6, 12);
  return id;
}

std::string event_reference_id(std::string_view wallet_id, std::int64_t version) {
  std::string reference(wallet_id);
  reference += ':';
  reference += std::to_string(version);
  return reference;
}

}  // namespace wallex
