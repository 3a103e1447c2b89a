// The head's actor table against a fake node manager served over real gRPC on loopback.
#include "scheduler/actor_directory.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/rpc.h"
#include "scheduler/head_store.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

constexpr char kToken[] = "test-token";

// Starts every actor at once (or fails the starts it is told to) and records what it was asked.
class FakeNode final : public proto::NodeService::Service {
 public:
  grpc::Status StartActor(grpc::ServerContext* context, const proto::StartActorRequest* request,
                          proto::StartActorReply* reply) override {
    absl::MutexLock lock(&mu);
    starts.push_back(request->incarnation());
    if (hold_starts) {
      auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) -> bool { return !hold_starts; };
      mu.Await(absl::Condition(&released));
    }
    reply->set_address("127.0.0.1:" + std::to_string(1000 + request->incarnation()));
    reply->set_pid(static_cast<int>(100 + request->incarnation()));
    reply->set_node_id("fake");
    return grpc::Status::OK;
  }
  grpc::Status KillActorWorker(grpc::ServerContext* context,
                               const proto::KillActorWorkerRequest* request,
                               proto::KillActorWorkerReply* reply) override {
    absl::MutexLock lock(&mu);
    kills.push_back(request->incarnation());
    return grpc::Status::OK;
  }

  absl::Mutex mu;
  std::vector<uint64_t> starts ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> kills ABSL_GUARDED_BY(mu);
  bool hold_starts ABSL_GUARDED_BY(mu) = false;
};

struct Fixture {
  explicit Fixture(HeadStore* store = nullptr) : store(store) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&node);
    server = builder.BuildAndStart();
    address = "127.0.0.1:" + std::to_string(port);
    Reopen();
  }
  // A new directory on the same store, as a restarted head has.
  void Reopen() {
    directory.reset();
    directory = std::make_unique<ActorDirectory>(
        kToken,
        [this](const proto::ActorSpec&) {
          ActorDirectory::NodePick pick;
          pick.address = address;
          return pick;
        },
        10'000, store);
  }
  ~Fixture() {
    directory.reset();
    server->Shutdown();
  }

  // Waits until the actor is in `state` (the head holds the lookup while it starts).
  proto::ActorInfo WaitFor(const std::string& id, proto::ActorInfo::State state) {
    proto::ActorInfo info;
    for (int i = 0; i < 100; ++i) {
      proto::GetActorInfoRequest request;
      request.set_actor_id(id);
      request.set_wait_ms(100);
      REQUIRE(directory->Get(request, &info).ok());
      if (info.state() == state) break;
    }
    return info;
  }

  proto::ActorSpec Spec(const std::string& id, int max_restarts) {
    proto::ActorSpec spec;
    spec.set_actor_id(id);
    spec.set_factory("Counter::Create");
    spec.set_max_restarts(max_restarts);
    return spec;
  }

  HeadStore* store;
  FakeNode node;
  int port = 0;
  std::string address;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<ActorDirectory> directory;
};

TEST_CASE("each start of an actor is a new incarnation and stale death reports are dropped",
          "[scheduler][actors]") {
  Fixture f;
  REQUIRE(f.directory->Create(f.Spec("a1", 3)).ok());
  REQUIRE(f.WaitFor("a1", proto::ActorInfo::ALIVE).pid() == 101);
  // Incarnation 1 dies: the actor restarts as incarnation 2.
  f.directory->ReportDeath("a1", 1, "killed by signal 9", true);
  proto::ActorInfo info = f.WaitFor("a1", proto::ActorInfo::ALIVE);
  CHECK(info.pid() == 102);
  CHECK(info.num_restarts() == 1);
  // A late report about incarnation 1 (say, from a node declared dead) changes nothing.
  f.directory->ReportDeath("a1", 1, "its node died", true);
  info = f.WaitFor("a1", proto::ActorInfo::ALIVE);
  CHECK(info.state() == proto::ActorInfo::ALIVE);
  CHECK(info.pid() == 102);
  CHECK(info.num_restarts() == 1);
  absl::MutexLock lock(&f.node.mu);
  CHECK(f.node.starts == std::vector<uint64_t>{1, 2});
}

TEST_CASE("a death reported while its incarnation starts is applied once the start is recorded",
          "[scheduler][actors]") {
  Fixture f;
  {
    absl::MutexLock lock(&f.node.mu);
    f.node.hold_starts = true;
  }
  REQUIRE(f.directory->Create(f.Spec("a2", 1)).ok());
  // The node's death report overtakes its StartActor reply.
  {
    absl::MutexLock lock(&f.node.mu);
    auto asked = [&f]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(f.node.mu) -> bool {
      return !f.node.starts.empty();
    };
    REQUIRE(f.node.mu.AwaitWithTimeout(absl::Condition(&asked), absl::Seconds(10)));
  }
  f.directory->ReportDeath("a2", 1, "its process exited", true);
  {
    absl::MutexLock lock(&f.node.mu);
    f.node.hold_starts = false;
  }
  const proto::ActorInfo info = f.WaitFor("a2", proto::ActorInfo::ALIVE);
  CHECK(info.num_restarts() == 1);
  CHECK(info.pid() == 102);
  absl::MutexLock lock(&f.node.mu);
  CHECK(f.node.starts == std::vector<uint64_t>{1, 2});
}

TEST_CASE("an actor out of restarts is dead and a kill names its incarnation",
          "[scheduler][actors]") {
  Fixture f;
  REQUIRE(f.directory->Create(f.Spec("a3", 0)).ok());
  REQUIRE(f.WaitFor("a3", proto::ActorInfo::ALIVE).pid() == 101);
  REQUIRE(f.directory->Kill("a3", /*no_restart=*/true).ok());
  {
    absl::MutexLock lock(&f.node.mu);
    CHECK(f.node.kills == std::vector<uint64_t>{1});
  }
  f.directory->ReportDeath("a3", 1, "killed", true);
  const proto::ActorInfo info = f.WaitFor("a3", proto::ActorInfo::DEAD);
  CHECK(info.state() == proto::ActorInfo::DEAD);
  CHECK(info.death_cause() == "killed by lumen::Kill");
}

TEST_CASE("a restarted head confirms the actors still running and restarts the others",
          "[scheduler][actors]") {
  testing::TempDir temp("actors");
  const std::string& dir = temp.path();
  {
    auto store = HeadStore::Open(dir + "/head.db");
    REQUIRE(store.ok());
    Fixture f(store->get());
    REQUIRE(f.directory->Create(f.Spec("kept", 2)).ok());
    REQUIRE(f.directory->Create(f.Spec("lost", 2)).ok());
    REQUIRE(f.WaitFor("kept", proto::ActorInfo::ALIVE).pid() == 101);
    REQUIRE(f.WaitFor("lost", proto::ActorInfo::ALIVE).pid() == 101);
    f.Reopen();
    REQUIRE(f.directory->Recover(absl::Seconds(30)).ok());
    // Known alive from the store, until its node says otherwise.
    CHECK(f.WaitFor("kept", proto::ActorInfo::ALIVE).state() == proto::ActorInfo::ALIVE);
    proto::NodeInfo node;
    node.set_address(f.address);
    proto::ProcessSummary* process = node.add_processes();
    process->set_actor_id("kept");
    process->set_pid(101);
    f.directory->NodeRegistered(node);
    const proto::ActorInfo kept = f.WaitFor("kept", proto::ActorInfo::ALIVE);
    CHECK(kept.num_restarts() == 0);
    CHECK(kept.pid() == 101);
    // Its process was gone: incarnation 2 replaces it.
    proto::ActorInfo lost;
    for (int i = 0; i < 50 && lost.pid() != 102; ++i)
      lost = f.WaitFor("lost", proto::ActorInfo::ALIVE);
    CHECK(lost.num_restarts() == 1);
    CHECK(lost.pid() == 102);
  }
}

}  // namespace
}  // namespace lumen::scheduler
