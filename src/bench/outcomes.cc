#include "bench/outcomes.h"

namespace wallex::bench {

std::string_view outcome_class_name(OutcomeClass outcome) {
  switch (outcome) {
    case OutcomeClass::kSuccess:
      return "success";
    case OutcomeClass::kRejected:
      return "rejected";
    case OutcomeClass::kFailure:
      return "failure";
  }
  return "?";
}

OutcomeClass classify_reply(OperationType type, int status, std::string_view code) {
  const bool command = type == OperationType::kCreate || type == OperationType::kCredit ||
                       type == OperationType::kDebit || type == OperationType::kTransfer;
  const int success_status = command ? 201 : 200;
  if (status == success_status && code.empty()) return OutcomeClass::kSuccess;
  const bool may_lack_funds = type == OperationType::kDebit || type == OperationType::kTransfer;
  if (may_lack_funds && status == 400 && code == "INSUFFICIENT_FUNDS")
    return OutcomeClass::kRejected;
  return OutcomeClass::kFailure;
}

void OutcomeCounts::add(OutcomeKey key, OutcomeClass outcome) {
  auto [it, inserted] = tallies_.try_emplace(std::move(key), Tally{outcome, 0});
  ++it->second.count;
}

void OutcomeCounts::merge(const OutcomeCounts& other) {
  for (const auto& [key, tally] : other.tallies_) {
    auto [it, inserted] = tallies_.try_emplace(key, Tally{tally.outcome, 0});
    it->second.count += tally.count;
  }
}

std::uint64_t OutcomeCounts::count(OutcomeClass outcome) const {
  std::uint64_t total = 0;
  for (const auto& [key, tally] : tallies_) {
    if (tally.outcome == outcome) total += tally.count;
  }
  return total;
}

std::uint64_t OutcomeCounts::count(OperationType type, OutcomeClass outcome) const {
  std::uint64_t total = 0;
  for (const auto& [key, tally] : tallies_) {
    if (key.type == type && tally.outcome == outcome) total += tally.count;
  }
  return total;
}

std::vector<OutcomeCounts::Entry> OutcomeCounts::entries() const {
  std::vector<Entry> out;
  out.reserve(tallies_.size());
  for (const auto& [key, tally] : tallies_) out.push_back(Entry{key, tally.outcome, tally.count});
  return out;
}

void PhaseStats::merge(const PhaseStats& other) {
  for (std::size_t i = 0; i < latency.size(); ++i) latency[i].merge(other.latency[i]);
  outcomes.merge(other.outcomes);
}

}  // namespace wallex::bench
