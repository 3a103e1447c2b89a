// Identifiers: object ids are 16 bytes, a random per-process prefix and a counter, so that
// any process can mint ids without asking anyone.
#pragma once

#include <string>

namespace lumen::internal {

inline constexpr size_t kObjectIdSize = 16;

std::string NewObjectId();
// 8 random bytes (worker ids, node ids, tokens' building block).
std::string RandomBytes(size_t n);
std::string Hex(const std::string& bytes);
// 12 hex digits derived from the whole id, for logs and messages.
std::string ShortHex(const std::string& bytes);
// INVALID_ARGUMENT-free decoding: returns false on bad input.
bool Unhex(const std::string& hex, std::string* bytes);

}  // namespace lumen::internal
