// The read-side queries: their parameters (parsed and validated from the query string, so
// invalid input is a 400 before anything runs) and their execution against a ReadStore, which
// produces the exact JSON reply documented in docs/http-api.md.
//
// Pure logic: the HTTP layer splits and percent-decodes the query string, picks the route and
// hands the typed query to the QueryService.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "projection/query_service.h"
#include "projection/read_store.h"

namespace wallex {

// A query string as (name, percent-decoded value) pairs, in order.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::size_t kWalletListLimitDefault = 100;
inline constexpr std::size_t kLedgerLimitDefault = 50;
inline constexpr std::size_t kWalletEventsLimitDefault = 100;
inline constexpr std::size_t kQueryLimitMax = 1'000;
// Offset paging walks the skipped entries: bounded so one request cannot occupy the query thread.
inline constexpr std::size_t kLedgerOffsetMax = 100'000;
inline constexpr std::size_t kReferenceEntriesMax = 1'000;

struct WalletListQuery {
  std::string after;  // ids greater than this; empty = from the start
  std::optional<std::string> owner_id;
  std::size_t limit = kWalletListLimitDefault;
};

struct WalletEventsQuery {
  std::string wallet_id;
  std::int64_t from_version = 0;
  std::size_t limit = kWalletEventsLimitDefault;
};

struct TimeTravelQuery {
  std::string wallet_id;
  std::optional<std::int64_t> at_version;
  std::optional<TimestampMs> at_ms;
};

// Errors are messages for a 400 INVALID_QUERY. A parameter given twice is an error (which one
// would win is ambiguous); unknown parameters are ignored, as the original did.
Result<std::int64_t, std::string> parse_min_position(const QueryParams& params);  // 0 if absent
Result<WalletListQuery, std::string> parse_wallet_list_query(const QueryParams& params);
Result<EntryFilter, std::string> parse_ledger_query(const QueryParams& params,
                                                    std::optional<std::string> wallet_id);
Result<WalletEventsQuery, std::string> parse_wallet_events_query(const QueryParams& params,
                                                                 std::string wallet_id);
// nullopt when neither atVersion nor at is present: GET /wallets/{id} then reads the write side.
Result<std::optional<TimeTravelQuery>, std::string> parse_time_travel_query(
    const QueryParams& params, std::string wallet_id);
// A reference id as the ledger writes them: a transfer id or "<walletId>:<version>".
bool is_plausible_reference_id(std::string_view reference_id);

// JSON array of snapshots; X-Next-Cursor when there is a next page.
QueryReply run_wallet_list(ReadStore& store, const WalletListQuery& query);
// {walletId, count, transactions} when the filter names a wallet, else {count, transactions}.
QueryReply run_ledger(ReadStore& store, const EntryFilter& filter);
QueryReply run_ledger_summary(ReadStore& store, const std::string& wallet_id);
QueryReply run_ledger_reference(ReadStore& store, const std::string& reference_id);
QueryReply run_wallet_events(ReadStore& store, const WalletEventsQuery& query);
QueryReply run_time_travel(ReadStore& store, const TimeTravelQuery& query);

// The JSON of one entry: {id, walletId, transactionType, amount, balanceBefore, balanceAfter,
// description, referenceId, relatedWalletId, metadata, createdAt}.
std::string encode_entry(const LedgerEntry& entry);

}  // namespace wallex
