// Validation of client-chosen identifiers.
//
// Wallet ids and owner ids: 1-128 characters from the safe set [A-Za-z0-9._:@-]. The set keeps
// ids usable unescaped in URLs, logs, Kafka keys and SQL text, and covers the forms the original
// clients use ("wallet-1732570000000-4821", "test-wallet", "user@example").
// Idempotency keys: 1-255 printable ASCII characters (0x21-0x7E).
#pragma once

#include <cstddef>
#include <string_view>

namespace wallex {

inline constexpr std::size_t kIdLengthMax = 128;
inline constexpr std::size_t kIdempotencyKeyLengthMax = 255;

bool is_valid_id(std::string_view id);
bool is_valid_idempotency_key(std::string_view key);

}  // namespace wallex
