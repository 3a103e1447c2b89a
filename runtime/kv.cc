// lumen::kv: the public KV functions, each one call of the process's KvClient to the head.
#include "lumen/kv.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lumen/errors.h"
#include "runtime/core_worker.h"
#include "runtime/internal/kv_client.h"

namespace lumen::kv {
namespace {

// How long a call keeps trying while the head cannot be reached (it may be restarting).
constexpr absl::Duration kRetryFor = absl::Seconds(30);

// The client for the current runtime's head; made again after a new Init.
std::shared_ptr<internal::KvClient> Client() {
  internal::CoreWorker* worker = internal::CurrentCoreWorker();
  if (worker == nullptr)
    throw Error("lumen::kv: Lumen is not initialized: call lumen::Init() first");
  static absl::Mutex mu;
  static auto* client = new std::shared_ptr<internal::KvClient>();  // guarded by mu
  absl::MutexLock lock(&mu);
  if (*client == nullptr || (*client)->head_address() != worker->head_address() ||
      (*client)->token() != worker->token()) {
    *client =
        std::make_shared<internal::KvClient>(worker->head_address(), worker->token(), kRetryFor);
  }
  return *client;
}

template <typename T>
T OrThrow(absl::StatusOr<T> result, const char* call) {
  if (!result.ok()) throw Error(absl::StrCat("lumen::kv::", call, ": ", result.status().message()));
  return *std::move(result);
}

}  // namespace

void Put(const std::string& key, const std::string& value, const std::string& ns) {
  const absl::Status status = Client()->Put(ns, key, value);
  if (!status.ok()) throw Error(absl::StrCat("lumen::kv::Put: ", status.message()));
}

std::optional<std::string> Get(const std::string& key, const std::string& ns) {
  return OrThrow(Client()->Get(ns, key), "Get");
}

bool Delete(const std::string& key, const std::string& ns) {
  return OrThrow(Client()->Delete(ns, key), "Delete");
}

std::vector<std::string> List(const std::string& prefix, const std::string& ns) {
  return OrThrow(Client()->List(ns, prefix), "List");
}

}  // namespace lumen::kv
