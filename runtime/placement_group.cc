// lumen::CreatePlacementGroup and friends: calls to the head's placement-group table
// (scheduler/placement_group_manager.h).
#include "lumen/placement_group.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "common/rpc.h"
#include "lumen/errors.h"
#include "lumen/scheduling.h"
#include "proto/control.grpc.pb.h"
#include "runtime/core_worker.h"

namespace lumen {
namespace {

constexpr absl::Duration kCallTimeout = absl::Seconds(30);
// One wait call's share of a longer wait (the head bounds it at 10 s).
constexpr int64_t kWaitSliceMs = 5000;

struct HeadClient {
  std::string address;
  std::string token;
  std::unique_ptr<proto::HeadService::Stub> stub;
};

// The head of the current runtime; made again after a new Init.
std::shared_ptr<HeadClient> Head(const char* call) {
  internal::CoreWorker* worker = internal::CurrentCoreWorker();
  if (worker == nullptr) {
    throw Error(
        absl::StrCat("lumen::", call, ": Lumen is not initialized: call lumen::Init() first"));
  }
  static absl::Mutex mu;
  static auto* client = new std::shared_ptr<HeadClient>();  // guarded by mu
  absl::MutexLock lock(&mu);
  if (*client == nullptr || (*client)->address != worker->head_address() ||
      (*client)->token != worker->token()) {
    auto made = std::make_shared<HeadClient>();
    made->address = worker->head_address();
    made->token = worker->token();
    made->stub = proto::HeadService::NewStub(internal::MakeChannel(made->address));
    *client = std::move(made);
  }
  return *client;
}

void ThrowIfFailed(const grpc::Status& status, const char* call, const std::string& address) {
  if (status.ok()) return;
  throw Error(
      absl::StrCat("lumen::", call, ": ",
                   internal::FromGrpc(status, absl::StrCat("the head at ", address)).message()));
}

proto::PlacementGroupInfo::Strategy ToProto(PlacementStrategy strategy) {
  switch (strategy) {
    case PlacementStrategy::kSpread:
      return proto::PlacementGroupInfo::SPREAD;
    case PlacementStrategy::kStrictPack:
      return proto::PlacementGroupInfo::STRICT_PACK;
    case PlacementStrategy::kStrictSpread:
      return proto::PlacementGroupInfo::STRICT_SPREAD;
    default:
      return proto::PlacementGroupInfo::PACK;
  }
}

PlacementStrategy FromProto(proto::PlacementGroupInfo::Strategy strategy) {
  switch (strategy) {
    case proto::PlacementGroupInfo::SPREAD:
      return PlacementStrategy::kSpread;
    case proto::PlacementGroupInfo::STRICT_PACK:
      return PlacementStrategy::kStrictPack;
    case proto::PlacementGroupInfo::STRICT_SPREAD:
      return PlacementStrategy::kStrictSpread;
    default:
      return PlacementStrategy::kPack;
  }
}

void CheckBundles(const std::vector<Bundle>& bundles) {
  if (bundles.empty()) {
    throw std::invalid_argument("lumen::CreatePlacementGroup: a group needs at least one bundle");
  }
  for (size_t i = 0; i < bundles.size(); ++i) {
    bool any = false;
    for (const auto& [name, amount] : bundles[i]) {
      if (!std::isfinite(amount) || amount < 0) {
        throw std::invalid_argument(absl::StrCat("lumen::CreatePlacementGroup: bundle ", i,
                                                 ": resource ", name, " has amount ", amount));
      }
      any = any || amount > 0;
    }
    if (!any) {
      throw std::invalid_argument(absl::StrCat("lumen::CreatePlacementGroup: bundle ", i,
                                               " is empty: give it some resource above zero"));
    }
  }
}

}  // namespace

PlacementGroup::PlacementGroup(std::string id, std::string name, PlacementStrategy strategy,
                               std::vector<Bundle> bundles)
    : id_(std::move(id)),
      name_(std::move(name)),
      strategy_(strategy),
      bundles_(std::move(bundles)) {}

bool PlacementGroup::Wait(int64_t timeout_ms) const {
  if (empty()) throw std::invalid_argument("lumen::PlacementGroup::Wait: an empty handle");
  std::shared_ptr<HeadClient> head = Head("PlacementGroup::Wait");
  proto::GetPlacementGroupRequest request;
  std::string raw;
  internal::Unhex(id_, &raw);
  request.set_placement_group_id(raw);
  const absl::Time deadline =
      timeout_ms < 0 ? absl::InfiniteFuture() : absl::Now() + absl::Milliseconds(timeout_ms);
  while (true) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    request.set_wait_ms(static_cast<int32_t>(std::clamp<int64_t>(left, 0, kWaitSliceMs)));
    grpc::ClientContext context;
    internal::PrepareContext(&context, head->token,
                             absl::Milliseconds(request.wait_ms()) + kCallTimeout);
    proto::PlacementGroupInfo info;
    ThrowIfFailed(head->stub->GetPlacementGroup(&context, request, &info), "PlacementGroup::Wait",
                  head->address);
    if (info.state() == proto::PlacementGroupInfo::CREATED) return true;
    if (info.state() == proto::PlacementGroupInfo::REMOVED) return false;
    if (absl::Now() >= deadline) return false;
  }
}

PlacementGroup CreatePlacementGroup(const std::vector<Bundle>& bundles, PlacementStrategy strategy,
                                    const std::string& name, bool detached) {
  CheckBundles(bundles);
  std::shared_ptr<HeadClient> head = Head("CreatePlacementGroup");
  proto::CreatePlacementGroupRequest request;
  proto::PlacementGroupInfo& group = *request.mutable_group();
  group.set_placement_group_id(internal::RandomBytes(16));
  group.set_name(name);
  group.set_strategy(ToProto(strategy));
  group.set_detached(detached);
  group.set_creator_job(internal::CurrentCoreWorker()->job_id());
  for (const Bundle& bundle : bundles) {
    auto& resources = *group.add_bundles()->mutable_resources();
    for (const auto& [resource, amount] : bundle) resources[resource] = amount;
  }
  grpc::ClientContext context;
  internal::PrepareContext(&context, head->token, kCallTimeout);
  proto::CreatePlacementGroupReply reply;
  ThrowIfFailed(head->stub->CreatePlacementGroup(&context, request, &reply), "CreatePlacementGroup",
                head->address);
  return PlacementGroup(internal::Hex(group.placement_group_id()), name, strategy, bundles);
}

void RemovePlacementGroup(const PlacementGroup& group) {
  if (group.empty()) throw std::invalid_argument("lumen::RemovePlacementGroup: an empty handle");
  std::shared_ptr<HeadClient> head = Head("RemovePlacementGroup");
  proto::RemovePlacementGroupRequest request;
  std::string raw;
  internal::Unhex(group.id(), &raw);
  request.set_placement_group_id(raw);
  grpc::ClientContext context;
  internal::PrepareContext(&context, head->token, kCallTimeout);
  proto::RemovePlacementGroupReply reply;
  ThrowIfFailed(head->stub->RemovePlacementGroup(&context, request, &reply), "RemovePlacementGroup",
                head->address);
}

std::optional<PlacementGroup> GetPlacementGroup(const std::string& name) {
  if (name.empty()) throw std::invalid_argument("lumen::GetPlacementGroup: a name is required");
  std::shared_ptr<HeadClient> head = Head("GetPlacementGroup");
  proto::GetPlacementGroupRequest request;
  request.set_name(name);
  grpc::ClientContext context;
  internal::PrepareContext(&context, head->token, kCallTimeout);
  proto::PlacementGroupInfo info;
  const grpc::Status status = head->stub->GetPlacementGroup(&context, request, &info);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return std::nullopt;
  ThrowIfFailed(status, "GetPlacementGroup", head->address);
  std::vector<Bundle> bundles;
  for (const auto& bundle : info.bundles()) {
    bundles.emplace_back(bundle.resources().begin(), bundle.resources().end());
  }
  return PlacementGroup(internal::Hex(info.placement_group_id()), info.name(),
                        FromProto(info.strategy()), std::move(bundles));
}

SchedulingStrategy SchedulingStrategy::PlacementGroup(const lumen::PlacementGroup& group,
                                                      int bundle_index) {
  if (group.empty()) {
    throw std::invalid_argument("SchedulingStrategy::PlacementGroup: an empty group handle");
  }
  if (bundle_index < -1 || bundle_index >= static_cast<int>(group.bundles().size())) {
    throw std::invalid_argument(absl::StrCat("SchedulingStrategy::PlacementGroup: bundle index ",
                                             bundle_index, " is out of range: the group has ",
                                             group.bundles().size(), " bundles (-1: any)"));
  }
  SchedulingStrategy strategy;
  strategy.kind = Kind::kPlacementGroup;
  strategy.placement_group_id = group.id();
  strategy.bundle_index = bundle_index;
  return strategy;
}

}  // namespace lumen
