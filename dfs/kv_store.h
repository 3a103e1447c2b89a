// The KV store the name node keeps its log in: lumen::kv (namespace "dfs") in the cluster,
// an in-memory map in unit tests.
//
// Implementations are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lumen::dfs {

class KvStore {
 public:
  virtual ~KvStore() = default;
  // Durable when it returns OK.
  [[nodiscard]] virtual absl::Status Put(const std::string& key, const std::string& value) = 0;
  [[nodiscard]] virtual absl::StatusOr<std::optional<std::string>> Get(const std::string& key) = 0;
  [[nodiscard]] virtual absl::Status Delete(const std::string& key) = 0;
  // Keys with `prefix`, in byte order.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> List(
      const std::string& prefix) = 0;
};

// The cluster's KV store (lumen::kv) in the DFS's namespace; needs lumen::Init().
std::unique_ptr<KvStore> ClusterKv();

}  // namespace lumen::dfs
