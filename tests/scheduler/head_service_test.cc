// The head's control service over real gRPC on loopback.
#include "scheduler/head_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <thread>

#include "common/rpc.h"

namespace lumen::scheduler {
namespace {

constexpr char kToken[] = "test-token";

struct HeadFixture {
  explicit HeadFixture(absl::Duration timeout) : service(kToken, "/tmp/session", timeout) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
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

  proto::ClusterStatus Status() {
    proto::ClusterStatus status;
    grpc::ClientContext context;
    internal::PrepareContext(&context, kToken, absl::Seconds(5));
    stub->GetClusterStatus(&context, proto::GetClusterStatusRequest(), &status);
    return status;
  }

  HeadService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<proto::HeadService::Stub> stub;
};

}  // namespace

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
  bool dead = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!dead && std::chrono::steady_clock::now() < deadline) {
    dead = !head.Status().nodes(0).alive();
    if (!dead) std::this_thread::yield();
  }
  REQUIRE(dead);
  proto::HeartbeatRequest beat;
  beat.mutable_node()->set_node_id("a");
  proto::HeartbeatReply reply;
  grpc::ClientContext context;
  internal::PrepareContext(&context, kToken, absl::Seconds(5));
  REQUIRE(head.stub->Heartbeat(&context, beat, &reply).ok());
  CHECK(reply.reregister());
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
