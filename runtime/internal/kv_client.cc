#include "runtime/internal/kv_client.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/kv_limits.h"
#include "common/rpc.h"

namespace lumen::internal {
namespace {

// One try's deadline: room for a 64 MiB value to travel and be synced.
constexpr absl::Duration kAttemptTimeout = absl::Seconds(20);

std::shared_ptr<grpc::Channel> KvChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // A KvGet reply carries a value of up to 64 MiB.
  args.SetMaxReceiveMessageSize(65 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

KvClient::KvClient(std::string head_address, std::string token, absl::Duration retry_for)
    : head_address_(std::move(head_address)),
      token_(std::move(token)),
      retry_for_(retry_for),
      stub_(proto::HeadService::NewStub(KvChannel(head_address_))) {}

template <typename Attempt>
grpc::Status KvClient::Call(Attempt attempt) {
  const absl::Time give_up = absl::Now() + retry_for_;
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    grpc::ClientContext context;
    PrepareContext(&context, token_, kAttemptTimeout);
    grpc::Status status = attempt(&context);
    const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!unreachable || absl::Now() + backoff >= give_up) return status;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

absl::Status KvClient::Put(const std::string& ns, const std::string& key,
                           const std::string& value) {
  if (auto status = CheckKvSizes(ns, key, "key", value.size()); !status.ok()) return status;
  proto::KvPutRequest request;
  request.set_ns(ns);
  request.set_key(key);
  request.set_value(value);
  proto::KvPutReply reply;
  const grpc::Status status =
      Call([&](grpc::ClientContext* context) { return stub_->KvPut(context, request, &reply); });
  return FromGrpc(status, absl::StrCat("KV put to the head at ", head_address_));
}

absl::StatusOr<std::optional<std::string>> KvClient::Get(const std::string& ns,
                                                         const std::string& key) {
  if (auto status = CheckKvSizes(ns, key, "key"); !status.ok()) return status;
  proto::KvGetRequest request;
  request.set_ns(ns);
  request.set_key(key);
  proto::KvGetReply reply;
  const grpc::Status status =
      Call([&](grpc::ClientContext* context) { return stub_->KvGet(context, request, &reply); });
  if (!status.ok())
    return FromGrpc(status, absl::StrCat("KV get from the head at ", head_address_));
  if (!reply.found()) return std::nullopt;
  return std::move(*reply.mutable_value());
}

absl::StatusOr<bool> KvClient::Delete(const std::string& ns, const std::string& key) {
  if (auto status = CheckKvSizes(ns, key, "key"); !status.ok()) return status;
  proto::KvDeleteRequest request;
  request.set_ns(ns);
  request.set_key(key);
  proto::KvDeleteReply reply;
  const grpc::Status status =
      Call([&](grpc::ClientContext* context) { return stub_->KvDelete(context, request, &reply); });
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("KV delete on the head at ", head_address_));
  }
  return reply.deleted();
}

absl::StatusOr<std::vector<std::string>> KvClient::List(const std::string& ns,
                                                        const std::string& prefix) {
  if (auto status = CheckKvSizes(ns, prefix, "prefix"); !status.ok()) return status;
  std::vector<std::string> keys;
  proto::KvListRequest request;
  request.set_ns(ns);
  request.set_prefix(prefix);
  while (true) {
    proto::KvListReply reply;
    const grpc::Status status =
        Call([&](grpc::ClientContext* context) { return stub_->KvList(context, request, &reply); });
    if (!status.ok()) {
      return FromGrpc(status, absl::StrCat("KV list on the head at ", head_address_));
    }
    for (std::string& key : *reply.mutable_keys()) keys.push_back(std::move(key));
    if (!reply.more() || keys.empty()) return keys;
    request.set_start_after(keys.back());
  }
}

}  // namespace lumen::internal
