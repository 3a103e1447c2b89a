// A client of the head's durable KV store (the KvPut/KvGet/KvDelete/KvList calls of the head's
// control service), behind lumen::kv. Calls that find the head unreachable are retried with
// backoff for `retry_for` (the head may be restarting), then fail with UNAVAILABLE naming it.
//
//   KvClient kv(head_address, token);
//   absl::Status put = kv.Put("", "model/latest", bytes);
//   absl::StatusOr<std::vector<std::string>> keys = kv.List("", "model/");
//
// Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/control.grpc.pb.h"

namespace lumen::internal {

class KvClient {
 public:
  KvClient(std::string head_address, std::string token, absl::Duration retry_for);

  const std::string& head_address() const { return head_address_; }
  const std::string& token() const { return token_; }

  // INVALID_ARGUMENT, before any call, if a key, value or namespace is over its limit.
  [[nodiscard]] absl::Status Put(const std::string& ns, const std::string& key,
                                 const std::string& value);
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(const std::string& ns,
                                                               const std::string& key);
  // True if the key was there. After a retried call, a delete that took effect on a try whose
  // reply was lost reports false.
  [[nodiscard]] absl::StatusOr<bool> Delete(const std::string& ns, const std::string& key);
  // Every key with `prefix`, in byte order (fetched page by page).
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> List(const std::string& ns,
                                                              const std::string& prefix);

 private:
  // Runs `attempt` (one gRPC call with a fresh context) until it succeeds, fails for a reason
  // other than an unreachable head, or retry_for passed.
  template <typename Attempt>
  grpc::Status Call(Attempt attempt);

  // Set at construction.
  const std::string head_address_;
  const std::string token_;
  const absl::Duration retry_for_;
  const std::unique_ptr<proto::HeadService::Stub> stub_;
};

}  // namespace lumen::internal
