// A node manager starting worker processes, with process starts that the test holds: the node
// must keep reporting to the head while a start is slow (a busy machine can take seconds per
// fork and exec, and a node starting hundreds of actors was declared dead for its silence).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc.h"
#include "net/listener.h"
#include "objectstore/object_store.h"
#include "objectstore/shm_region.h"
#include "scheduler/head_service.h"
#include "scheduler/head_store.h"
#include "scheduler/node_manager.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

constexpr char kToken[] = "test-token";

// Stands in for fork and exec: every start waits until the test releases it, then fails
// (so no process is ever started).
class HeldSpawner {
 public:
  absl::StatusOr<int> Spawn(const internal::SpawnOptions& /*options*/) {
    absl::MutexLock lock(&mu_);
    ++started_;
    mu_.Await(absl::Condition(&released_));
    return absl::UnavailableError("the test's spawner starts no process");
  }
  // True once a start is under way, within `timeout`.
  bool WaitStarted(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto started = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&started), timeout);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

 private:
  absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
};

// A head and its own node manager served by one gRPC server on loopback, as in a head daemon,
// with the node manager's process starts going to a HeldSpawner.
struct HeadNode {
  HeadNode() {
    auto opened = HeadStore::Open(dir + "/head.db");
    REQUIRE(opened.ok());
    store = std::move(*opened);
    head = std::make_unique<HeadService>(kToken, dir, absl::Seconds(30), store.get());
    shm_name = absl::StrCat("lumen_nm_spawn_test_", getpid());
    auto region = objectstore::ShmRegion::Create(shm_name, size_t{4} << 20);
    REQUIRE(region.ok());
    // The node manager must know its address before the server starts.
    auto free_port = net::PickFreePort("127.0.0.1");
    REQUIRE(free_port.ok());
    const std::string address = absl::StrCat("127.0.0.1:", *free_port);
    NodeManagerConfig config{.node_id = "node-1",
                             .ip = "127.0.0.1",
                             .address = address,
                             .head_address = address,
                             .token = kToken,
                             .session_dir = dir,
                             .executable = "/bin/true",
                             .shm_name = shm_name,
                             .resources = {{"CPU", 0}},
                             .is_head = true,
                             .heartbeat_period = absl::Milliseconds(50)};
    config.spawn = [this](const internal::SpawnOptions& options) { return spawner.Spawn(options); };
    node_manager = std::make_unique<NodeManager>(
        config, std::make_unique<objectstore::ObjectStore>(std::move(*region)));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(head.get());
    builder.RegisterService(node_manager.get());
    server = builder.BuildAndStart();
    REQUIRE(port != 0);
    REQUIRE(node_manager->Start().ok());
    stub = proto::NodeService::NewStub(internal::MakeChannel(address));
  }
  ~HeadNode() {
    spawner.Release();
    if (caller.joinable()) caller.join();
    node_manager->Stop();
    server->Shutdown();
    node_manager.reset();
    head.reset();
    store.reset();
    (void)objectstore::ShmRegion::Unlink(shm_name);
  }

  // Whether the head's latest report from this node lists a worker starting an actor.
  bool HeadSeesStartingActor() {
    for (const proto::NodeInfo& node : head->Nodes()) {
      for (const proto::ProcessSummary& process : node.processes()) {
        if (process.kind() == "actor" && process.state() == "STARTING") return true;
      }
    }
    return false;
  }

  testing::TempDir temp{"nm_spawn"};  // declared first: removed after everything using it
  const std::string dir = temp.path();
  HeldSpawner spawner;
  std::string shm_name;
  std::unique_ptr<HeadStore> store;
  std::unique_ptr<HeadService> head;
  std::unique_ptr<NodeManager> node_manager;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<proto::NodeService::Stub> stub;
  std::thread caller;  // a call that waits on the spawner
};

TEST_CASE("a node manager keeps reporting to the head while a worker process is being started",
          "[scheduler]") {
  // Before the node: its destructor joins the caller, which writes these.
  grpc::Status started;
  proto::StartActorReply reply;
  HeadNode node;
  node.caller = std::thread([&] {
    proto::StartActorRequest request;
    request.mutable_spec()->set_actor_id("actor-1");
    request.set_incarnation(1);
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(60));
    started = node.stub->StartActor(&context, request, &reply);
  });
  REQUIRE(node.spawner.WaitStarted(absl::Seconds(30)));

  // The start is still held: the head hears of the starting worker all the same.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool seen = node.HeadSeesStartingActor();
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen = node.HeadSeesStartingActor();
  }
  CHECK(seen);

  node.spawner.Release();
  node.caller.join();
  CHECK(started.error_code() == grpc::StatusCode::INTERNAL);
  CHECK(node.node_manager->Info().num_workers() == 0);
}

}  // namespace
}  // namespace lumen::scheduler
