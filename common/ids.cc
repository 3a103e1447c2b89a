#include "common/ids.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>

namespace lumen::internal {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  if (urandom.read(out.data(), static_cast<std::streamsize>(n))) return out;
  std::random_device device;
  for (auto& c : out) c = static_cast<char>(device());
  return out;
}

std::string NewObjectId() {
  static const std::string prefix = RandomBytes(8);
  static std::atomic<uint64_t> counter{1};
  std::string id = prefix;
  id.resize(kObjectIdSize);
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  std::memcpy(id.data() + 8, &n, 8);
  return id;
}

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string ShortHex(const std::string& bytes) {
  // Ids share their first bytes within a process, so a short name comes from all of them.
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) hash = (hash ^ c) * 1099511628211ull;
  return Hex(std::string(reinterpret_cast<const char*>(&hash), 6));
}

bool Unhex(const std::string& hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bytes->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = value(hex[i]);
    const int lo = value(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace lumen::internal
