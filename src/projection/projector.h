// Projector: turns events into rows of the read side. A projector is pure mapping plus a cache of
// the per-wallet state it needs; the ProjectionRunner decides which events it sees, owns the
// transaction and writes its checkpoint.
//
// Contract for implementations:
//  - apply() is called with events in position order, each exactly once per transaction;
//  - flush() writes the state the projector kept in memory (called before the checkpoint);
//  - reset() forgets everything cached: called after a rollback and whenever the checkpoint in
//    the store is not the one the projector last committed (e.g. after an external rebuild).
//  - An event that cannot be applied (a broken invariant in the log or in the read side) is
//    reported as StoreErrorKind::kCorrupt, never skipped: the projector stops there.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/check.h"
#include "projection/event_log.h"
#include "projection/read_store.h"
#include "projection/rows.h"
#include "store/store.h"

namespace wallex {

struct ProjectorOptions {
  // Rebuild: every wallet's state stays in memory and is written once, in id order, at the end
  // (the tables start empty, so a wallet not in memory does not exist).
  bool keep_all_state = false;
  // Incremental: the cache is dropped after a flush once it holds more wallets than this.
  std::size_t cached_wallets_max = 200'000;
};

class Projector {
 public:
  virtual ~Projector() = default;
  virtual ProjectorId id() const = 0;
  virtual Status<StoreError> apply(const LoggedEvent& event, ReadStore& store) = 0;
  virtual Status<StoreError> flush(ReadStore& store) = 0;
  virtual void reset() = 0;
};

// Dense numbers for wallets (LoggedEvent::wallet_slot), in the order they are first seen; the
// same wallet keeps its number until clear().
class WalletNumbering {
 public:
  void number(std::vector<LoggedEvent>& events) {
    for (LoggedEvent& event : events) {
      const auto [entry, added] =
          numbers_.try_emplace(event.event.wallet_id, static_cast<std::int64_t>(numbers_.size()));
      event.wallet_slot = entry->second;
    }
  }
  std::size_t size() const { return numbers_.size(); }
  void clear() { numbers_.clear(); }

 private:
  std::unordered_map<std::string, std::int64_t> numbers_;
};

// The per-wallet states a projector works on, with the ones changed since the last flush. A
// wallet is found by its id, or, when the event carries a dense wallet_slot (a rebuild's reader
// thread and the ProjectionRunner number the wallets once for all projectors), by that index
// into a vector: one array access instead of a hash lookup per event and projector.
template <typename State>
class StateCache {
 public:
  struct Slot {
    std::optional<State> state;  // nullopt: known not to exist
    bool dirty = false;
    std::string wallet_id;  // slots indexed by wallet_slot only
  };

  Slot* find(const LoggedEvent& event) {
    if (event.wallet_slot >= 0) {
      const auto index = static_cast<std::size_t>(event.wallet_slot);
      if (index >= by_slot_.size()) by_slot_.resize(std::max(index + 1, by_slot_.size() * 2));
      if (by_slot_[index] == nullptr) return nullptr;
      Slot& slot = *by_slot_[index];
      // Slots are numbered by id (whoever numbered them), so the ids are equal; comparing the
      // lengths catches a numbering mix-up without chasing the characters of every id.
      WALLEX_CHECK(slot.wallet_id.size() == event.event.wallet_id.size());
      return &slot;
    }
    const auto it = by_id_.find(event.event.wallet_id);
    return it == by_id_.end() ? nullptr : &it->second;
  }
  Slot& put(const LoggedEvent& event, std::optional<State> state) {
    Slot* slot = nullptr;
    if (event.wallet_slot >= 0) {
      find(event);  // sizes the vector
      std::unique_ptr<Slot>& owned = by_slot_[static_cast<std::size_t>(event.wallet_slot)];
      if (owned == nullptr) {
        owned = std::make_unique<Slot>();
        ++slots_used_;
      }
      slot = owned.get();
      slot->wallet_id = event.event.wallet_id;
    } else {
      slot = &by_id_[event.event.wallet_id];
    }
    slot->state = std::move(state);
    return *slot;
  }
  void mark_dirty(const LoggedEvent& event, Slot& slot) {
    if (slot.dirty) return;
    slot.dirty = true;
    if (event.wallet_slot >= 0) {
      dirty_slots_.push_back(static_cast<std::size_t>(event.wallet_slot));
    } else {
      dirty_ids_.push_back(event.event.wallet_id);
    }
  }
  // Calls write(state) for every dirty state, in id order, then marks them clean.
  template <typename Write>
  Status<StoreError> flush(Write&& write) {
    std::vector<Slot*> dirty;
    dirty.reserve(dirty_ids_.size() + dirty_slots_.size());
    std::sort(dirty_ids_.begin(), dirty_ids_.end());
    for (const std::string& id : dirty_ids_) dirty.push_back(&by_id_.at(id));
    std::sort(dirty_slots_.begin(), dirty_slots_.end(), [this](std::size_t a, std::size_t b) {
      return by_slot_[a]->wallet_id < by_slot_[b]->wallet_id;
    });
    for (const std::size_t index : dirty_slots_) dirty.push_back(by_slot_[index].get());
    for (Slot* slot : dirty) {
      if (auto written = write(*slot->state); !written) return written;
      slot->dirty = false;
    }
    dirty_ids_.clear();
    dirty_slots_.clear();
    return Ok{};
  }
  std::size_t size() const { return by_id_.size() + slots_used_; }
  void clear() {
    by_id_.clear();
    by_slot_.clear();
    slots_used_ = 0;
    dirty_ids_.clear();
    dirty_slots_.clear();
  }

 private:
  std::unordered_map<std::string, Slot> by_id_;
  // Pointers: the numbers cover every wallet the numbering saw, the cache only the wallets in
  // use since its last clear(), so an unused number costs 8 bytes rather than a Slot.
  std::vector<std::unique_ptr<Slot>> by_slot_;
  std::size_t slots_used_ = 0;  // non-null entries of by_slot_
  std::vector<std::string> dirty_ids_;
  std::vector<std::size_t> dirty_slots_;
};

inline StoreError projection_error(ProjectorId id, const LoggedEvent& event,
                                   const std::string& why) {
  return StoreError{StoreErrorKind::kCorrupt, std::string(projector_name(id)) +
                                                  ": event at position " +
                                                  std::to_string(event.position) + ": " + why};
}

}  // namespace wallex
