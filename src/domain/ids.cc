#include "domain/ids.h"

namespace wallex {

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kIdLengthMax) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > kIdempotencyKeyLengthMax) return false;
  for (const char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace wallex
