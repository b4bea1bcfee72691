#include "projection/compare.h"

#include <functional>
#include <optional>
#include <string>

namespace wallex {
namespace {

// A sorted stream of rows, fetched a page at a time after the last key seen.
template <typename Row, typename Key>
class Cursor {
 public:
  using Fetch = std::function<Result<std::vector<Row>, StoreError>(const std::optional<Key>&)>;
  using KeyOf = std::function<Key(const Row&)>;
  Cursor(Fetch fetch, KeyOf key_of) : fetch_(std::move(fetch)), key_of_(std::move(key_of)) {}

  // The current row, or nullptr at the end.
  Result<const Row*, StoreError> peek() {
    if (next_ < rows_.size()) return &rows_[next_];
    if (done_) return static_cast<const Row*>(nullptr);
    auto page = fetch_(last_);
    if (!page) return fail(page.error());
    rows_ = std::move(page).value();
    next_ = 0;
    if (rows_.empty()) {
      done_ = true;
      return static_cast<const Row*>(nullptr);
    }
    return &rows_[0];
  }
  void advance() {
    last_ = key_of_(rows_[next_]);
    ++next_;
  }

 private:
  Fetch fetch_;
  KeyOf key_of_;
  std::vector<Row> rows_;
  std::size_t next_ = 0;
  std::optional<Key> last_;
  bool done_ = false;
};

class Comparer {
 public:
  Comparer(ReadStore& reference, ReadStore& other, const CompareOptions& options)
      : reference_(reference), other_(other), options_(options) {}

  template <typename Row, typename Key>
  Status<StoreError> merge(const std::string& what, Cursor<Row, Key> left, Cursor<Row, Key> right,
                           const std::function<Key(const Row&)>& key_of,
                           const std::function<std::string(const Key&)>& key_text,
                           const std::function<std::string(const Row&)>& describe) {
    std::int64_t compared = 0;
    while (true) {
      auto a = left.peek();
      if (!a) return fail(a.error());
      auto b = right.peek();
      if (!b) return fail(b.error());
      const Row* l = a.value();
      const Row* r = b.value();
      if (l == nullptr && r == nullptr) break;
      if (r == nullptr || (l != nullptr && key_of(*l) < key_of(*r))) {
        difference(what + " " + key_text(key_of(*l)) + ": only in the reference (" + describe(*l) +
                   ")");
        left.advance();
      } else if (l == nullptr || key_of(*r) < key_of(*l)) {
        difference(what + " " + key_text(key_of(*r)) + ": only in the compared store (" +
                   describe(*r) + ")");
        right.advance();
      } else {
        if (!(*l == *r)) {
          difference(what + " " + key_text(key_of(*l)) + " differs: reference " + describe(*l) +
                     "; compared " + describe(*r));
        }
        ++compared;
        left.advance();
        right.advance();
      }
    }
    report_.summary.push_back(what + ": " + std::to_string(compared) + " rows on both sides");
    return Ok{};
  }

  Status<StoreError> run(const std::vector<ProjectorId>& projections) {
    const std::size_t page = options_.page_rows;
    for (const ProjectorId id : projections) {
      switch (id) {
        case ProjectorId::kReadModel: {
          auto fetch = [page](ReadStore& s) {
            return [&s, page](const std::optional<std::string>& after) {
              return s.list_read_wallets(after.value_or(""), std::nullopt, page);
            };
          };
          std::function<std::string(const WalletState&)> key_of = [](const WalletState& w) {
            return w.id;
          };
          if (auto s = merge<WalletState, std::string>(
                  "read-model wallet", {fetch(reference_), key_of}, {fetch(other_), key_of}, key_of,
                  [](const std::string& k) { return k; },
                  [](const WalletState& w) {
                    return "owner " + w.owner_id + ", balance " + w.balance.to_fixed2() +
                           ", version " + std::to_string(w.version) + ", updatedAt " +
                           std::to_string(w.updated_at_ms);
                  });
              !s) {
            return s;
          }
          break;
        }
        case ProjectorId::kLedger: {
          auto wallets = [page](ReadStore& s) {
            return [&s, page](const std::optional<std::string>& after) {
              return s.scan_ledger_wallets(after.value_or(""), page);
            };
          };
          std::function<std::string(const LedgerWallet&)> wallet_key = [](const LedgerWallet& w) {
            return w.wallet_id;
          };
          if (auto s = merge<LedgerWallet, std::string>(
                  "ledger wallet", {wallets(reference_), wallet_key}, {wallets(other_), wallet_key},
                  wallet_key, [](const std::string& k) { return k; },
                  [](const LedgerWallet& w) {
                    return "balance " + w.balance.to_fixed2() + ", version " +
                           std::to_string(w.version) + ", credits " +
                           std::to_string(w.credits_minor) + ", debits " +
                           std::to_string(w.debits_minor) + ", entries " +
                           std::to_string(w.entry_count) + ", key " + std::to_string(w.wallet_key);
                  });
              !s) {
            return s;
          }
          auto entries = [page](ReadStore& s) {
            return [&s, page](const std::optional<std::int64_t>& after) {
              return s.scan_entries(after.value_or(0), page);
            };
          };
          std::function<std::int64_t(const LedgerEntry&)> position = [](const LedgerEntry& e) {
            return e.position;
          };
          if (auto s = merge<LedgerEntry, std::int64_t>(
                  "ledger entry at position", {entries(reference_), position},
                  {entries(other_), position}, position,
                  [](const std::int64_t& p) { return std::to_string(p); },
                  [](const LedgerEntry& e) {
                    return std::string(entry_type_name(e.type)) + " " + e.amount.to_fixed2() +
                           " on " + e.wallet_id + " v" + std::to_string(e.version) + ", " +
                           e.balance_before.to_fixed2() + " -> " + e.balance_after.to_fixed2() +
                           ", reference " + e.reference_id + ", metadata " + e.metadata;
                  });
              !s) {
            return s;
          }
          break;
        }
        case ProjectorId::kWalletEvents: {
          auto wallets = [page](ReadStore& s) {
            return [&s, page](const std::optional<std::string>& after) {
              return s.scan_event_wallets(after.value_or(""), page);
            };
          };
          std::function<std::string(const EventWallet&)> wallet_key = [](const EventWallet& w) {
            return w.wallet_id;
          };
          if (auto s = merge<EventWallet, std::string>(
                  "event-copy wallet", {wallets(reference_), wallet_key},
                  {wallets(other_), wallet_key}, wallet_key, [](const std::string& k) { return k; },
                  [](const EventWallet& w) {
                    return "balance " + w.balance.to_fixed2() + ", version " +
                           std::to_string(w.version) + ", key " + std::to_string(w.wallet_key);
                  });
              !s) {
            return s;
          }
          auto events = [page](ReadStore& s) {
            return [&s, page](const std::optional<std::int64_t>& after) {
              return s.scan_wallet_events(after.value_or(0), page);
            };
          };
          std::function<std::int64_t(const WalletEventRow&)> position =
              [](const WalletEventRow& e) { return e.position; };
          if (auto s = merge<WalletEventRow, std::int64_t>(
                  "event copy at position", {events(reference_), position},
                  {events(other_), position}, position,
                  [](const std::int64_t& p) { return std::to_string(p); },
                  [](const WalletEventRow& e) {
                    return std::string(event_type_name(e.type)) + " on " + e.wallet_id + " v" +
                           std::to_string(e.version) + ", balance after " +
                           e.balance_after.to_fixed2() + ", data " + e.data;
                  });
              !s) {
            return s;
          }
          break;
        }
      }
    }
    return Ok{};
  }

  VerifyReport take() { return std::move(report_); }

 private:
  void difference(std::string text) {
    ++report_.difference_count;
    if (report_.differences.size() < options_.differences_shown) {
      report_.differences.push_back(std::move(text));
    }
  }

  ReadStore& reference_;
  ReadStore& other_;
  const CompareOptions& options_;
  VerifyReport report_;
};

}  // namespace

Result<VerifyReport, StoreError> compare_read_stores(ReadStore& reference, ReadStore& other,
                                                     const std::vector<ProjectorId>& projections,
                                                     const CompareOptions& options) {
  if (auto s = reference.begin_read(); !s) return fail(s.error());
  if (auto s = other.begin_read(); !s) {
    reference.end_read();
    return fail(s.error());
  }
  Comparer comparer(reference, other, options);
  auto ran = comparer.run(projections);
  other.end_read();
  reference.end_read();
  if (!ran) return fail(ran.error());
  return comparer.take();
}

}  // namespace wallex
