// The head's control service over real gRPC on loopback.
#include "scheduler/head_service.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/rpc.h"
#include "lumen/kv.h"
#include "scheduler/cluster_usage.h"
#include "scheduler/node_state_name.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

constexpr char kToken[] = "test-token";

// A head store in a fresh directory, removed at the end.
struct StoreDir {
  StoreDir() {
    auto opened = HeadStore::Open(dir.Sub("head.db"));
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }
  testing::TempDir dir{"head"};  // declared first: removed after the store closes
  std::unique_ptr<HeadStore> store;
};

struct HeadFixture {
  explicit HeadFixture(absl::Duration timeout)
      : HeadFixture(timeout, std::make_shared<StoreDir>()) {}
  // A head on the store of `shared`: a restarted head when another one used it before.
  HeadFixture(absl::Duration timeout, std::shared_ptr<StoreDir> shared)
      : dir(std::move(shared)), service(kToken, "/tmp/session", timeout, dir->store.get()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    builder.SetMaxReceiveMessageSize(65 << 20);
    server = builder.BuildAndStart();
    stub = proto::HeadService::NewStub(internal::MakeChannel("127.0.0.1:" + std::to_string(port)));
  }
  ~HeadFixture() { server->Shutdown(); }

  grpc::Status Register(const std::string& id, double cpus, double available) {
    proto::RegisterNodeRequest request;
    request.mutable_node()->set_node_id(id);
    request.mutable_node()->set_address(id + ":1");
    (*request.mutable_node()->mutable_total())["CPU"] = cpus;
    (*request.mutable_node()->mutable_available())["CPU"] = available;
    proto::RegisterNodeReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    return stub->RegisterNode(&context, request, &reply);
  }

  proto::HeartbeatReply Heartbeat(const std::string& id) {
    proto::HeartbeatRequest request;
    request.mutable_node()->set_node_id(id);
    proto::HeartbeatReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    REQUIRE(stub->Heartbeat(&context, request, &reply).ok());
    return reply;
  }

  // Whether the first node listed is declared dead within 10 s.
  bool WaitUntilFirstNodeDead() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!Status().nodes(0).alive()) return true;
      std::this_thread::yield();
    }
    return false;
  }

  proto::ClusterStatus Status() {
    proto::ClusterStatus status;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    stub->GetClusterStatus(&context, proto::GetClusterStatusRequest(), &status);
    return status;
  }

  std::shared_ptr<StoreDir> dir;
  HeadService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<proto::HeadService::Stub> stub;
};

// The store of a previous head that node `id` (with all its `cpus` free) registered with.
std::shared_ptr<StoreDir> StoreWithNode(const std::string& id, double cpus) {
  auto dir = std::make_shared<StoreDir>();
  HeadFixture previous(absl::Seconds(30), dir);
  REQUIRE(previous.Register(id, cpus, cpus).ok());
  return dir;
}

template <typename Request, typename Reply, typename Call>
grpc::Status Kv(HeadFixture& head, Call call, const Request& request, Reply* reply) {
  grpc::ClientContext context;
  internal::PrepareContext(&context, kToken, absl::Seconds(10));
  return (head.stub.get()->*call)(&context, request, reply);
}

}  // namespace

TEST_CASE("KV puts, gets, lists and deletes keys per namespace", "[scheduler][head][kv]") {
  HeadFixture head(absl::Seconds(30));
  auto put = [&](const std::string& ns, const std::string& key, const std::string& value) {
    proto::KvPutRequest request;
    request.set_ns(ns);
    request.set_key(key);
    request.set_value(value);
    proto::KvPutReply reply;
    return Kv(head, &proto::HeadService::Stub::KvPut, request, &reply);
  };
  auto get = [&](const std::string& ns, const std::string& key) {
    proto::KvGetRequest request;
    request.set_ns(ns);
    request.set_key(key);
    proto::KvGetReply reply;
    REQUIRE(Kv(head, &proto::HeadService::Stub::KvGet, request, &reply).ok());
    return reply;
  };
  REQUIRE(put("", "a/1", "one").ok());
  REQUIRE(put("", "a/2", "two").ok());
  REQUIRE(put("other", "a/1", "elsewhere").ok());
  CHECK(get("", "a/1").value() == "one");
  CHECK(get("other", "a/1").value() == "elsewhere");
  CHECK_FALSE(get("", "a/3").found());

  proto::KvListRequest list;
  list.set_prefix("a/");
  list.set_limit(1);
  proto::KvListReply page;
  REQUIRE(Kv(head, &proto::HeadService::Stub::KvList, list, &page).ok());
  REQUIRE(page.keys_size() == 1);
  CHECK(page.keys(0) == "a/1");
  CHECK(page.more());
  list.set_start_after("a/1");
  REQUIRE(Kv(head, &proto::HeadService::Stub::KvList, list, &page).ok());
  REQUIRE(page.keys_size() == 1);
  CHECK(page.keys(0) == "a/2");
  CHECK_FALSE(page.more());

  proto::KvDeleteRequest del;
  del.set_key("a/1");
  proto::KvDeleteReply deleted;
  REQUIRE(Kv(head, &proto::HeadService::Stub::KvDelete, del, &deleted).ok());
  CHECK(deleted.deleted());
  REQUIRE(Kv(head, &proto::HeadService::Stub::KvDelete, del, &deleted).ok());
  CHECK_FALSE(deleted.deleted());
  CHECK_FALSE(get("", "a/1").found());
  CHECK(get("other", "a/1").found());
}

TEST_CASE("KV refuses keys and values over their limits, and calls without the token",
          "[scheduler][head][kv]") {
  HeadFixture head(absl::Seconds(30));
  proto::KvPutRequest request;
  proto::KvPutReply reply;
  SECTION("a key over 4 KiB") {
    request.set_key(std::string(kv::kMaxKeyBytes + 1, 'k'));
    const grpc::Status status = Kv(head, &proto::HeadService::Stub::KvPut, request, &reply);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(), Catch::Contains("KV key is 4097 bytes"));
  }
  SECTION("a value over 64 MiB") {
    request.set_key("k");
    request.set_value(std::string(kv::kMaxValueBytes + 1, 'v'));
    const grpc::Status status = Kv(head, &proto::HeadService::Stub::KvPut, request, &reply);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(status.error_message(), Catch::Contains("the limit is 67108864"));
  }
  SECTION("a namespace over 256 bytes") {
    request.set_ns(std::string(300, 'n'));
    const grpc::Status status = Kv(head, &proto::HeadService::Stub::KvPut, request, &reply);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("no token") {
    grpc::ClientContext context;
    request.set_key("k");
    const grpc::Status status = head.stub->KvPut(&context, request, &reply);
    CHECK(status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_CASE("a registered node is listed alive with its resources", "[scheduler][head]") {
  HeadFixture head(absl::Seconds(30));
  REQUIRE(head.Register("a", 4, 3).ok());
  const proto::ClusterStatus status = head.Status();
  REQUIRE(status.nodes_size() == 1);
  CHECK(status.nodes(0).alive());
  CHECK(status.nodes(0).total().at("CPU") == 4);
  CHECK(status.session_dir() == "/tmp/session");
}

TEST_CASE("calls without the cluster token are refused", "[scheduler][head]") {
  HeadFixture head(absl::Seconds(30));
  grpc::ClientContext context;
  proto::ClusterStatus status;
  const grpc::Status result =
      head.stub->GetClusterStatus(&context, proto::GetClusterStatusRequest(), &status);
  CHECK(result.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(result.error_message().find("token") != std::string::npos);
}

TEST_CASE("a node that stops sending heartbeats is declared dead and told to re-register",
          "[scheduler][head]") {
  HeadFixture head(absl::Milliseconds(200));
  REQUIRE(head.Register("a", 2, 2).ok());
  REQUIRE(head.WaitUntilFirstNodeDead());
  proto::HeartbeatRequest beat;
  beat.mutable_node()->set_node_id("a");
  proto::HeartbeatReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, kToken, absl::Seconds(5));
  REQUIRE(head.stub->Heartbeat(&context, beat, &reply).ok());
  CHECK(reply.reregister());
  // It was declared dead, so it must end what it ran before registering again.
  CHECK(reply.fenced());
}

TEST_CASE("a node read back by a restarted head is unconfirmed until it registers again",
          "[scheduler][head][recovery]") {
  const auto dir = StoreWithNode("a", 4);
  HeadFixture head(absl::Seconds(30), dir);
  const proto::NodeInfo recovered = head.Status().nodes(0);
  CHECK(recovered.alive());  // not declared dead
  CHECK(recovered.unconfirmed());
  CHECK(std::string(NodeStateName(recovered)) == "UNCONFIRMED");
  CHECK_THAT(recovered.state_reason(), Catch::Contains("not yet heard from"));
  // Its stored figures are not summed as current.
  const ClusterUsage unheard = SumUsage(head.Status().nodes());
  CHECK(unheard.alive == 0);
  CHECK(unheard.unconfirmed == 1);
  CHECK(unheard.resources.empty());
  // Its first heartbeat is refused for a registration, without fencing it.
  const proto::HeartbeatReply beat = head.Heartbeat("a");
  CHECK(beat.reregister());
  CHECK_FALSE(beat.fenced());
  CHECK(head.Status().nodes(0).unconfirmed());

  REQUIRE(head.Register("a", 4, 1).ok());
  const proto::NodeInfo confirmed = head.Status().nodes(0);
  CHECK(confirmed.alive());
  CHECK_FALSE(confirmed.unconfirmed());
  CHECK(confirmed.state_reason().empty());
  CHECK(std::string(NodeStateName(confirmed)) == "ALIVE");
  CHECK(confirmed.available().at("CPU") == 1);
  const ClusterUsage heard = SumUsage(head.Status().nodes());
  CHECK(heard.alive == 1);
  CHECK(heard.unconfirmed == 0);
  CHECK(heard.resources.at("CPU").used == 3);
}

TEST_CASE("a node read back by a restarted head that never reports is declared dead",
          "[scheduler][head][recovery]") {
  const auto dir = StoreWithNode("a", 2);
  HeadFixture head(absl::Milliseconds(200), dir);
  REQUIRE(head.WaitUntilFirstNodeDead());
  const proto::NodeInfo node = head.Status().nodes(0);
  CHECK_FALSE(node.unconfirmed());
  CHECK(std::string(NodeStateName(node)) == "DEAD");
  // Declared dead, so a late heartbeat is fenced like any dead node's.
  CHECK(head.Heartbeat("a").fenced());
}

TEST_CASE("a restarted head places work on an unconfirmed node by its stored resources",
          "[scheduler][head][recovery]") {
  // Its node manager usually lives on through the head's outage and judges each lease itself;
  // holding placements back until it reports would fail shapes only it can hold.
  const auto dir = StoreWithNode("a", 2);
  HeadFixture head(absl::Seconds(30), dir);
  proto::FindNodeRequest request;
  (*request.mutable_resources())["CPU"] = 1;
  proto::FindNodeReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, kToken, absl::Seconds(5));
  REQUIRE(head.stub->FindNode(&context, request, &reply).ok());
  CHECK(reply.node_id() == "a");
  CHECK(head.Status().nodes(0).unconfirmed());
}

TEST_CASE("FindNode picks another node with the shape available, or says it is infeasible",
          "[scheduler][head]") {
  HeadFixture head(absl::Seconds(30));
  REQUIRE(head.Register("busy", 2, 0).ok());
  REQUIRE(head.Register("idle", 2, 2).ok());
  auto find = [&](double cpus, const std::string& exclude) {
    proto::FindNodeRequest request;
    (*request.mutable_resources())["CPU"] = cpus;
    request.set_exclude_node_id(exclude);
    proto::FindNodeReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    head.stub->FindNode(&context, request, &reply);
    return reply;
  };
  SECTION("a shape the idle node has") {
    const auto reply = find(1, "busy");
    CHECK(reply.node_id() == "idle");
    CHECK_FALSE(reply.infeasible());
  }
  SECTION("the only node with room is the one asking") {
    const auto reply = find(1, "idle");
    CHECK(reply.address().empty());
    CHECK_FALSE(reply.infeasible());
  }
  SECTION("more CPUs than any node has") {
    const auto reply = find(8, "busy");
    CHECK(reply.address().empty());
    CHECK(reply.infeasible());
  }
}

TEST_CASE("FindNode tells a SPREAD request how many live nodes could ever hold its shape",
          "[scheduler][head][spread]") {
  HeadFixture head(absl::Seconds(30));
  REQUIRE(head.Register("busy", 2, 0).ok());
  REQUIRE(head.Register("idle", 2, 2).ok());
  REQUIRE(head.Register("small", 1, 1).ok());
  auto find = [&](double cpus, proto::SchedulingStrategy::Kind kind) {
    proto::FindNodeRequest request;
    (*request.mutable_resources())["CPU"] = cpus;
    request.mutable_strategy()->set_kind(kind);
    proto::FindNodeReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    REQUIRE(head.stub->FindNode(&context, request, &reply).ok());
    return reply;
  };
  CHECK(find(1, proto::SchedulingStrategy::SPREAD).feasible_nodes() == 3);
  CHECK(find(2, proto::SchedulingStrategy::SPREAD).feasible_nodes() == 2);  // busy counts too
  CHECK(find(8, proto::SchedulingStrategy::SPREAD).feasible_nodes() == 0);
  CHECK(find(1, proto::SchedulingStrategy::DEFAULT).feasible_nodes() == 0);  // only for SPREAD
}

TEST_CASE("Fits compares every resource of a shape", "[scheduler][head]") {
  google::protobuf::Map<std::string, double> available;
  available["CPU"] = 2;
  available["GPU"] = 1;
  google::protobuf::Map<std::string, double> shape;
  shape["CPU"] = 2;
  CHECK(Fits(available, shape));
  shape["GPU"] = 2;
  CHECK_FALSE(Fits(available, shape));
  shape.erase("GPU");
  shape["widget"] = 1;
  CHECK_FALSE(Fits(available, shape));
  shape["widget"] = 0;
  CHECK(Fits(available, shape));
}

}  // namespace lumen::scheduler
