#include "projection/queries.h"

#include <charconv>
#include <cstdint>

#include "common/time_format.h"
#include "domain/ids.h"
#include "json/json_writer.h"
#include "service/reply_encoding.h"
#include "store/event_codec.h"

namespace wallex {
namespace {

// The value of a parameter, nullopt when absent; an error when it is given twice.
Result<std::optional<std::string_view>, std::string> param(const QueryParams& params,
                                                           std::string_view name) {
  std::optional<std::string_view> found;
  for (const auto& [key, value] : params) {
    if (key != name) continue;
    if (found) return fail(std::string(name) + " is given more than once");
    found = value;
  }
  return found;
}

// A non-negative decimal integer without sign or spaces, at most `max`.
Result<std::optional<std::int64_t>, std::string> integer_param(const QueryParams& params,
                                                               std::string_view name,
                                                               std::int64_t min, std::int64_t max) {
  auto text = param(params, name);
  if (!text) return fail(text.error());
  if (!text.value()) return std::optional<std::int64_t>();
  const std::string_view digits = *text.value();
  const std::string range = " between " + std::to_string(min) + " and " + std::to_string(max);
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  const bool all_digits =
      !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
  if (!all_digits || error == std::errc::result_out_of_range) {
    return fail(std::string(name) + " must be an integer" + range);
  }
  if (error != std::errc() || end != digits.data() + digits.size() || value < min || value > max) {
    return fail(std::string(name) + " must be an integer" + range);
  }
  return std::optional<std::int64_t>(value);
}

Result<std::optional<std::string>, std::string> id_param(const QueryParams& params,
                                                         std::string_view name) {
  auto text = param(params, name);
  if (!text) return fail(text.error());
  if (!text.value()) return std::optional<std::string>();
  if (!is_valid_id(*text.value())) {
    return fail(std::string(name) + " must be 1-128 characters of [A-Za-z0-9._:@-]");
  }
  return std::optional<std::string>(std::string(*text.value()));
}

Result<std::optional<TimestampMs>, std::string> time_param(const QueryParams& params,
                                                           std::string_view name) {
  auto text = param(params, name);
  if (!text) return fail(text.error());
  if (!text.value()) return std::optional<TimestampMs>();
  const std::optional<TimestampMs> ms = parse_iso8601(*text.value());
  if (!ms) {
    return fail(std::string(name) +
                " must be an ISO-8601 date or UTC time such as 2026-01-31 or "
                "2026-01-31T12:00:00.000Z");
  }
  return ms;
}

QueryReply json_reply(std::string body) {
  QueryReply reply;
  reply.body = std::move(body);
  return reply;
}

QueryReply store_failure(const StoreError& error) {
  return query_error(ErrorCode::kStoreUnavailable,
                     "The read side could not answer: " + error.message);
}

void write_entry(JsonWriter& out, const LedgerEntry& entry) {
  out.begin_object();
  out.key("id").string(entry_id_for_position(entry.position));
  out.key("walletId").string(entry.wallet_id);
  out.key("transactionType").string(entry_type_name(entry.type));
  out.key("amount").string(entry.amount.to_fixed2());
  out.key("balanceBefore").string(entry.balance_before.to_fixed2());
  out.key("balanceAfter").string(entry.balance_after.to_fixed2());
  out.key("description");
  if (entry.description) {
    out.string(*entry.description);
  } else {
    out.null();
  }
  out.key("referenceId").string(entry.reference_id);
  out.key("relatedWalletId");
  if (entry.related_wallet_id) {
    out.string(*entry.related_wallet_id);
  } else {
    out.null();
  }
  out.key("metadata").raw_value(entry.metadata);
  out.key("createdAt").string(format_iso8601_ms(entry.created_at_ms));
  out.end_object();
}

void write_entries(JsonWriter& out, const std::vector<LedgerEntry>& entries) {
  out.key("count").integer(static_cast<std::int64_t>(entries.size()));
  out.key("transactions").begin_array();
  for (const LedgerEntry& entry : entries) write_entry(out, entry);
  out.end_array();
}

QueryReply not_found(std::string message) {
  return query_error(ErrorCode::kWalletNotFound, message);
}

}  // namespace

// ---------------------------------------------------------------------------------- parsing

Result<std::int64_t, std::string> parse_min_position(const QueryParams& params) {
  auto position = integer_param(params, "minPosition", 0, INT64_MAX);
  if (!position) return fail(position.error());
  return position.value().value_or(0);
}

Result<WalletListQuery, std::string> parse_wallet_list_query(const QueryParams& params) {
  WalletListQuery query;
  auto limit = integer_param(params, "limit", 1, kQueryLimitMax);
  if (!limit) return fail(limit.error());
  if (limit.value()) query.limit = static_cast<std::size_t>(*limit.value());
  auto after = id_param(params, "after");
  if (!after) return fail(after.error());
  if (after.value()) query.after = *after.value();
  auto owner = id_param(params, "ownerId");
  if (!owner) return fail(owner.error());
  query.owner_id = owner.value();
  return query;
}

Result<EntryFilter, std::string> parse_ledger_query(const QueryParams& params,
                                                    std::optional<std::string> wallet_id) {
  EntryFilter filter;
  filter.wallet_id = std::move(wallet_id);
  auto type = param(params, "transactionType");
  if (!type) return fail(type.error());
  if (type.value()) {
    filter.type = entry_type_from_name(*type.value());
    if (!filter.type) {
      return fail(
          std::string("transactionType must be one of CREDIT, DEBIT, TRANSFER_OUT, TRANSFER_IN"));
    }
  }
  auto start = time_param(params, "startDate");
  if (!start) return fail(start.error());
  filter.start_ms = start.value();
  auto end = time_param(params, "endDate");
  if (!end) return fail(end.error());
  filter.end_ms = end.value();
  if (filter.start_ms && filter.end_ms && *filter.start_ms > *filter.end_ms) {
    return fail(std::string("startDate must not be after endDate"));
  }
  auto limit = integer_param(params, "limit", 1, kQueryLimitMax);
  if (!limit) return fail(limit.error());
  filter.limit = static_cast<std::size_t>(limit.value().value_or(kLedgerLimitDefault));
  auto offset = integer_param(params, "offset", 0, kLedgerOffsetMax);
  if (!offset) return fail(offset.error());
  filter.offset = static_cast<std::size_t>(offset.value().value_or(0));
  return filter;
}

Result<WalletEventsQuery, std::string> parse_wallet_events_query(const QueryParams& params,
                                                                 std::string wallet_id) {
  WalletEventsQuery query;
  query.wallet_id = std::move(wallet_id);
  auto from = integer_param(params, "fromVersion", 0, INT64_MAX);
  if (!from) return fail(from.error());
  query.from_version = from.value().value_or(0);
  auto limit = integer_param(params, "limit", 1, kQueryLimitMax);
  if (!limit) return fail(limit.error());
  query.limit = static_cast<std::size_t>(limit.value().value_or(kWalletEventsLimitDefault));
  return query;
}

Result<std::optional<TimeTravelQuery>, std::string> parse_time_travel_query(
    const QueryParams& params, std::string wallet_id) {
  auto version = integer_param(params, "atVersion", 0, INT64_MAX);
  if (!version) return fail(version.error());
  auto at = time_param(params, "at");
  if (!at) return fail(at.error());
  if (!version.value() && !at.value()) return std::optional<TimeTravelQuery>();
  if (version.value() && at.value())
    return fail(std::string("give either atVersion or at, not both"));
  return std::optional<TimeTravelQuery>(
      TimeTravelQuery{std::move(wallet_id), version.value(), at.value()});
}

bool is_plausible_reference_id(std::string_view reference_id) {
  // "<walletId>:<version>" is at most 128 + 1 + 19 characters of the id set; a transfer id is
  // a UUID, also made of that set.
  constexpr std::size_t kLengthMax = kIdLengthMax + 20;
  if (reference_id.empty() || reference_id.size() > kLengthMax) return false;
  for (const char c : reference_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------- execution

QueryReply run_wallet_list(ReadStore& store, const WalletListQuery& query) {
  auto wallets = store.list_read_wallets(query.after, query.owner_id, query.limit + 1);
  if (!wallets) return store_failure(wallets.error());
  std::vector<WalletState>& rows = wallets.value();
  const bool more = rows.size() > query.limit;
  if (more) rows.resize(query.limit);
  JsonWriter out;
  out.begin_array();
  for (const WalletState& wallet : rows) out.raw_value(encode_snapshot(wallet));
  out.end_array();
  QueryReply reply = json_reply(out.take());
  if (more) reply.headers.emplace_back("X-Next-Cursor", rows.back().id);
  return reply;
}

QueryReply run_ledger(ReadStore& store, const EntryFilter& filter) {
  auto entries = store.find_entries(filter);
  if (!entries) return store_failure(entries.error());
  JsonWriter out;
  out.begin_object();
  if (filter.wallet_id) out.key("walletId").string(*filter.wallet_id);
  write_entries(out, entries.value());
  out.end_object();
  return json_reply(out.take());
}

QueryReply run_ledger_summary(ReadStore& store, const std::string& wallet_id) {
  auto wallet = store.ledger_wallet(wallet_id);
  if (!wallet) return store_failure(wallet.error());
  const LedgerWallet totals =
      wallet.value().value_or(LedgerWallet{wallet_id, 0, 0, Money(), 0, 0, 0});
  std::optional<LedgerEntry> last;
  if (totals.entry_count > 0) {
    EntryFilter newest;
    newest.wallet_id = wallet_id;
    newest.limit = 1;
    auto entries = store.find_entries(newest);
    if (!entries) return store_failure(entries.error());
    if (!entries.value().empty()) last = entries.value().front();
  }
  JsonWriter out;
  out.begin_object();
  out.key("walletId").string(wallet_id);
  out.key("totalCredits").number_text(Money::from_minor(totals.credits_minor).to_json_number());
  out.key("totalDebits").number_text(Money::from_minor(totals.debits_minor).to_json_number());
  out.key("transactionCount").integer(totals.entry_count);
  if (last) {
    out.key("lastTransaction");
    write_entry(out, *last);
  }
  out.end_object();
  return json_reply(out.take());
}

QueryReply run_ledger_reference(ReadStore& store, const std::string& reference_id) {
  auto entries = store.entries_by_reference(reference_id, kReferenceEntriesMax);
  if (!entries) return store_failure(entries.error());
  JsonWriter out;
  out.begin_object();
  out.key("referenceId").string(reference_id);
  write_entries(out, entries.value());
  out.end_object();
  return json_reply(out.take());
}

QueryReply run_wallet_events(ReadStore& store, const WalletEventsQuery& query) {
  auto rows = store.wallet_events(query.wallet_id, query.from_version, query.limit + 1);
  if (!rows) return store_failure(rows.error());
  std::vector<WalletEventRow>& events = rows.value();
  if (events.empty() && query.from_version > 0) {
    // An empty page past the end, or a wallet that does not exist: tell them apart.
    auto first = store.wallet_events(query.wallet_id, 0, 1);
    if (!first) return store_failure(first.error());
    if (first.value().empty()) return not_found("Wallet " + query.wallet_id + " not found");
  } else if (events.empty()) {
    return not_found("Wallet " + query.wallet_id + " not found");
  }
  const bool more = events.size() > query.limit;
  if (more) events.resize(query.limit);
  JsonWriter out;
  out.begin_object();
  out.key("walletId").string(query.wallet_id);
  out.key("count").integer(static_cast<std::int64_t>(events.size()));
  out.key("events").begin_array();
  for (const WalletEventRow& row : events) {
    out.begin_object();
    out.key("position").integer(row.position);
    out.key("version").integer(row.version);
    out.key("type").string(event_type_name(row.type));
    out.key("data").raw_value(row.data);
    out.key("metadata").raw_value(row.metadata);
    out.key("occurredAt").string(format_iso8601_ms(row.occurred_at_ms));
    out.end_object();
  }
  out.end_array();
  out.end_object();
  QueryReply reply = json_reply(out.take());
  if (more) reply.headers.emplace_back("X-Next-Cursor", std::to_string(events.back().version + 1));
  return reply;
}

QueryReply run_time_travel(ReadStore& store, const TimeTravelQuery& query) {
  const std::string& id = query.wallet_id;
  std::optional<WalletEventRow> row;
  if (query.at_version) {
    auto rows = store.wallet_events(id, *query.at_version, 1);
    if (!rows) return store_failure(rows.error());
    if (!rows.value().empty() && rows.value().front().version == *query.at_version) {
      row = rows.value().front();
    }
  } else {
    auto found = store.wallet_event_at(id, *query.at_ms);
    if (!found) return store_failure(found.error());
    row = found.value();
  }
  auto first = store.wallet_events(id, 0, 1);
  if (!first) return store_failure(first.error());
  if (first.value().empty() || first.value().front().version != 0) {
    return not_found("Wallet " + id + " not found");
  }
  if (!row) {
    return not_found(query.at_version
                         ? "Wallet " + id + " has no version " + std::to_string(*query.at_version)
                         : "Wallet " + id + " did not exist at " + format_iso8601_ms(*query.at_ms));
  }
  const WalletEventRow& created = first.value().front();
  auto decoded = decode_stored_event(created.position, created.wallet_id, created.version,
                                     event_type_name(created.type), created.data, created.metadata);
  if (!decoded || decoded.value().event.type != EventType::kWalletCreated) {
    return store_failure(StoreError{StoreErrorKind::kCorrupt,
                                    "the first event of wallet " + id + " is not WalletCreated"});
  }
  WalletState snapshot;
  snapshot.id = id;
  snapshot.owner_id = decoded.value().event.owner_id;
  snapshot.balance = row->balance_after;
  snapshot.version = row->version;
  snapshot.created_at_ms = created.occurred_at_ms;
  snapshot.updated_at_ms = row->occurred_at_ms;
  return json_reply(encode_snapshot(snapshot));
}

std::string encode_entry(const LedgerEntry& entry) {
  JsonWriter out;
  write_entry(out, entry);
  return out.take();
}

}  // namespace wallex
