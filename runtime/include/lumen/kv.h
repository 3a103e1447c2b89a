// The cluster's durable key-value store, kept by the head in its session folder: a write is on
// the head's disk when Put returns, and survives the head being killed and restarted on the
// same session folder (`lumen start --head --session-dir=...`).
//
//   lumen::kv::Put("model/latest", bytes);
//   std::optional<std::string> latest = lumen::kv::Get("model/latest");
//   for (const std::string& key : lumen::kv::List("model/")) lumen::kv::Delete(key);
//
// Keys and values are arbitrary bytes. Namespaces keep the keys of different users apart
// ("" is the default one). Each call is one round trip to the head, retried for a while when
// the head cannot be reached (it may be restarting); it then throws lumen::Error naming the
// head. Bad input (a key or value over the limits below) throws lumen::Error at once.
// Thread-safe; needs lumen::Init().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace lumen::kv {

inline constexpr size_t kMaxKeyBytes = size_t{4} << 10;
inline constexpr size_t kMaxValueBytes = size_t{64} << 20;
inline constexpr size_t kMaxNamespaceBytes = 256;

// Sets `key` to `value`, replacing what was there.
void Put(const std::string& key, const std::string& value, const std::string& ns = "");
// The value of `key`, or nullopt if there is none.
std::optional<std::string> Get(const std::string& key, const std::string& ns = "");
// Removes `key`; true if it was there.
bool Delete(const std::string& key, const std::string& ns = "");
// Every key that starts with `prefix`, in byte order.
std::vector<std::string> List(const std::string& prefix, const std::string& ns = "");

}  // namespace lumen::kv
