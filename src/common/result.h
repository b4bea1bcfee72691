// Result<T, E>: a value or an expected failure, returned instead of thrown (g++ 12 has no
// std::expected in C++20). Business outcomes and infrastructure failures travel as Result;
// broken invariants stop the process through WALLEX_CHECK instead.
#pragma once

#include <utility>
#include <variant>

#include "common/check.h"

namespace wallex {

template <typename E>
struct Failure {
  E error;
};

template <typename E>
Failure<std::decay_t<E>> fail(E&& error) {
  return Failure<std::decay_t<E>>{std::forward<E>(error)};
}

template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Failure<E> failure)                                             // NOLINT: implicit by design
      : state_(std::in_place_index<1>, std::move(failure.error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    WALLEX_CHECK(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    WALLEX_CHECK(ok());
    return std::get<0>(state_);
  }
  // By value, so `for (auto& x : f().value())` does not dangle.
  T value() && {
    WALLEX_CHECK(ok());
    return std::get<0>(std::move(state_));
  }
  const E& error() const {
    WALLEX_CHECK(!ok());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, E> state_;
};

// Result<void, E>: success carries nothing.
struct Ok {};

template <typename E>
using Status = Result<Ok, E>;

}  // namespace wallex
