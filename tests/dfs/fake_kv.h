// An in-memory KvStore for unit tests, which can be told to fail.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "dfs/kv_store.h"

namespace lumen::dfs {

class FakeKv final : public KvStore {
 public:
  absl::Status Put(const std::string& key, const std::string& value) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("the fake KV is down");
    data_[key] = value;
    ++puts_;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("the fake KV is down");
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }
  absl::Status Delete(const std::string& key) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("the fake KV is down");
    data_.erase(key);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> List(const std::string& prefix) override {
    absl::MutexLock lock(&mu_);
    if (fail_) return absl::UnavailableError("the fake KV is down");
    std::vector<std::string> keys;
    for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.rfind(prefix, 0) == 0;
         ++it) {
      keys.push_back(it->first);
    }
    return keys;
  }

  void SetFailing(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }
  std::map<std::string, std::string> data() {
    absl::MutexLock lock(&mu_);
    return data_;
  }
  void Set(const std::string& key, const std::string& value) {
    absl::MutexLock lock(&mu_);
    data_[key] = value;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> data_ ABSL_GUARDED_BY(mu_);
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lumen::dfs
