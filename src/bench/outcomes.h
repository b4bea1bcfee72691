// How the bench judges each reply, and the tallies it reports.
//
//   success  — the status the contract promises: 201 for create/credit/debit/transfer, 200 for
//              reads and /health;
//   rejected — a correct business outcome: 400 INSUFFICIENT_FUNDS for a debit or a transfer
//              (the original's workload is not balance-aware, so a correct server must refuse
//              some). Never a failure;
//   failure  — everything else: other 4xx, 5xx, a 2xx whose body breaks the contract, and
//              transport failures (status 0, code CONNECT_FAILED, TIMEOUT, ...).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench/latency_histogram.h"
#include "bench/workload.h"

namespace wallex::bench {

enum class OutcomeClass { kSuccess, kRejected, kFailure };

std::string_view outcome_class_name(OutcomeClass outcome);
OutcomeClass classify_reply(OperationType type, int status, std::string_view code);

// The code recorded for a 2xx reply whose body does not match the contract.
inline constexpr std::string_view kBadReplyBodyCode = "BAD_REPLY_BODY";

struct OutcomeKey {
  OperationType type = OperationType::kHealth;
  int status = 0;    // 0: no HTTP reply (transport failure)
  std::string code;  // error code of the body, transport failure name, or ""
  auto operator<=>(const OutcomeKey&) const = default;
};

class OutcomeCounts {
 public:
  struct Entry {
    OutcomeKey key;
    OutcomeClass outcome = OutcomeClass::kSuccess;
    std::uint64_t count = 0;
  };

  void add(OutcomeKey key, OutcomeClass outcome);
  void merge(const OutcomeCounts& other);
  std::uint64_t count(OutcomeClass outcome) const;
  std::uint64_t count(OperationType type, OutcomeClass outcome) const;
  // Sorted by operation type, status, code.
  std::vector<Entry> entries() const;

 private:
  struct Tally {
    OutcomeClass outcome = OutcomeClass::kSuccess;
    std::uint64_t count = 0;
  };
  std::map<OutcomeKey, Tally> tallies_;
};

// What one engine thread saw in one phase; merged across threads afterwards.
struct PhaseStats {
  // Per operation type: latency of every HTTP reply (success, rejected or failed); transport
  // failures have no reply and are only counted.
  std::array<LatencyHistogram, kOperationTypeCount> latency;
  OutcomeCounts outcomes;

  void merge(const PhaseStats& other);
};

}  // namespace wallex::bench
