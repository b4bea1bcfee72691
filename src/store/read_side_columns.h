// The columns of the read side's tables, in the order both read stores (SQLite's read.db and the
// shared PostgreSQL read side) select and decode them: one list, so the two schemas and their
// row decoders cannot drift apart. See docs/event-format.md ("read.db") and docs/postgresql.md.
#pragma once

namespace wallex::read_columns {

inline constexpr const char* kWallet =
    "id, owner_id, balance_minor, version, created_at_ms, updated_at_ms";
inline constexpr const char* kLedgerWallet =
    "wallet_id, version, balance_minor, credits_minor, debits_minor, entry_count, wallet_key";
inline constexpr const char* kEntry =
    "position, wallet_id, version, type, amount_minor, balance_before_minor, balance_after_minor,"
    " description, reference_id, related_wallet_id, metadata, created_at_ms, wallet_key";
inline constexpr const char* kWalletEvent =
    "position, wallet_id, version, type, data, metadata, occurred_at_ms, balance_after_minor,"
    " wallet_key";
inline constexpr const char* kEventWallet = "wallet_id, wallet_key, version, balance_minor";

}  // namespace wallex::read_columns
