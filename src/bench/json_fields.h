// Reads a JSON reply into a flat list of its scalar values, each named by its path
// ("fromWallet.balance", "items.0.id"). Numbers keep their exact text, so a balance is converted
// by wallex::Money::parse and never passes through a double.
//
// Why not the service's body decoder: it keeps only top-level fields, and a transfer reply nests
// two wallet snapshots. Why not Boost.JSON here: each third-party library lives in one adapter
// folder (src/json), and this reader is 150 lines.
//
// Strict RFC 8259 grammar; nesting deeper than kJsonDepthMax is refused.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace wallex::bench {

inline constexpr int kJsonDepthMax = 32;

enum class JsonScalarKind { kNull, kBool, kNumber, kString };

struct JsonScalar {
  std::string path;
  JsonScalarKind kind = JsonScalarKind::kNull;
  std::string text;  // decoded string, exact number text, "true"/"false", or empty for null
};

class JsonFields {
 public:
  // Fails with a short description of where the text stops being JSON.
  static Result<JsonFields, std::string> parse(std::string_view text);
  // The same into this object, whose scalars' string buffers are reused: a load generator
  // decodes every reply, and a fresh object costs two allocations per scalar. On failure the
  // object holds no scalars.
  Status<std::string> parse_into(std::string_view text);

  const JsonScalar* find(std::string_view path) const;
  // The scalar at "<prefix>.<key>", or at "<key>" when the prefix is empty.
  const JsonScalar* find(std::string_view prefix, std::string_view key) const;
  // The part of `path` below `prefix` ("b.c" for "a.b.c" under "a"), all of it for an empty
  // prefix, nullopt when the path is not below the prefix.
  static std::optional<std::string_view> path_below(std::string_view path, std::string_view prefix);
  std::span<const JsonScalar> scalars() const { return {scalars_.data(), size_}; }

 private:
  friend class JsonFieldsReader;
  std::vector<JsonScalar> scalars_;  // the first size_ are this text's; the rest spare buffers
  std::size_t size_ = 0;
  std::string path_;  // the reader's path while it parses, kept for its buffer
};

}  // namespace wallex::bench
