#include "dfs/kv_store.h"

#include "dfs/messages.h"
#include "lumen/lumen.h"

namespace lumen::dfs {
namespace {

// lumen::kv throws lumen::Error; the DFS works with statuses.
class ClusterKvStore final : public KvStore {
 public:
  absl::Status Put(const std::string& key, const std::string& value) override {
    return Guard([&] { kv::Put(key, value, kKvNamespace); });
  }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    std::optional<std::string> value;
    if (auto status = Guard([&] { value = kv::Get(key, kKvNamespace); }); !status.ok()) {
      return status;
    }
    return value;
  }
  absl::Status Delete(const std::string& key) override {
    return Guard([&] { kv::Delete(key, kKvNamespace); });
  }
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override {
    std::vector<std::string> keys;
    if (auto status = Guard([&] { keys = kv::List(prefix, kKvNamespace); }); !status.ok()) {
      return status;
    }
    return keys;
  }

 private:
  template <typename F>
  static absl::Status Guard(F f) {
    try {
      f();
      return absl::OkStatus();
    } catch (const Error& e) {
      return absl::UnavailableError(e.what());
    }
  }
};

}  // namespace

std::unique_ptr<KvStore> ClusterKv() { return std::make_unique<ClusterKvStore>(); }

}  // namespace lumen::dfs
