// Payload frames: raw bytes after a frame, placed where the receiver's sink says.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "net/connection.h"
#include "net/io_pool.h"
#include "net/listener.h"
#include "tests/net/net_test_util.h"

namespace lumen::net {
namespace {

using testing::FastOptions;
using testing::Framed;
using testing::Inbox;
using testing::kLongWait;
using testing::kToken;
using testing::RawPeer;
using testing::TaskFrame;
using testing::TestListener;

// A listener whose one accepted connection puts payloads into `memory` (at the offset the
// frame's seq names), or drops them when the seq is odd, and records its frames in `inbox`.
class SinkListener {
 public:
  SinkListener(IoPool& io, size_t memory_bytes) : memory_(memory_bytes, '\0') {
    auto listener =
        Listener::Start(io, "127.0.0.1", 0, kToken, FastOptions(),
                        [this](const std::shared_ptr<Connection>& conn, const proto::Hello&) {
                          absl::MutexLock lock(&mu_);
                          conn_ = conn;
                          conn->SetPayloadSink([this](Connection&, const proto::Frame& frame,
                                                      size_t bytes) -> char* {
                            const uint64_t at = frame.task().seq();
                            if (at % 2 == 1 || at + bytes > memory_.size()) return nullptr;
                            return memory_.data() + at;
                          });
                          return inbox_.Handlers();
                        });
    REQUIRE(listener.ok());
    listener_ = std::move(*listener);
  }
  ~SinkListener() {
    listener_->Stop();
    absl::MutexLock lock(&mu_);
    if (conn_ != nullptr) conn_->Close("test over");
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(listener_->port()); }
  int port() const { return listener_->port(); }
  Inbox& inbox() { return inbox_; }
  const std::string& memory() const { return memory_; }

 private:
  std::string memory_;
  Inbox inbox_;
  absl::Mutex mu_;
  std::shared_ptr<Connection> conn_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Listener> listener_;
};

std::string Pattern(size_t n, unsigned seed) {
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>((i * 131 + seed) % 251);
  return bytes;
}

std::shared_ptr<Connection> Client(IoPool& io, const std::string& address, Inbox& inbox) {
  auto conn = Connection::Connect(io, address, absl::Seconds(5), FastOptions());
  REQUIRE(conn.ok());
  (*conn)->Start(inbox.Handlers());
  REQUIRE((*conn)->Send(MakeHello(kToken, "")));
  return *conn;
}

TEST_CASE("payloads land whole in the sink's memory, in order with the frames around them",
          "[net]") {
  IoPool io(1, "test-io");
  constexpr size_t kBig = size_t{20} << 20;  // far more than a socket buffer: read in parts
  SinkListener server(io, kBig + 4096);
  Inbox client_inbox;
  auto client = Client(io, server.address(), client_inbox);
  const std::string big = Pattern(kBig, 1);
  const std::string small = Pattern(100, 2);
  REQUIRE(client->SendWithPayload(TaskFrame(0, "big"), big.data(), big.size()));
  REQUIRE(client->Send(TaskFrame(7, "plain"), /*flush=*/false));
  REQUIRE(client->SendWithPayload(TaskFrame(kBig, "small"), small.data(), small.size(),
                                  /*flush=*/false));
  REQUIRE(client->SendWithPayload(TaskFrame(kBig + 200, "empty"), "", 0));
  REQUIRE(server.inbox().WaitForFrames(4));
  const auto frames = server.inbox().frames();
  CHECK(frames[0].task().function() == "big");
  CHECK(frames[1].task().function() == "plain");
  CHECK(frames[2].task().function() == "small");
  CHECK(frames[3].task().function() == "empty");
  CHECK(server.memory().compare(0, kBig, big) == 0);
  CHECK(server.memory().compare(kBig, small.size(), small) == 0);
  CHECK(server.inbox().closes() == 0);
  io.Stop();
}

TEST_CASE("a payload its sink drops is skipped and the frames after it still arrive", "[net]") {
  IoPool io(1, "test-io");
  SinkListener server(io, 1024);
  Inbox client_inbox;
  auto client = Client(io, server.address(), client_inbox);
  const std::string dropped = Pattern(size_t{3} << 20, 3);
  REQUIRE(client->SendWithPayload(TaskFrame(1, "odd: dropped"), dropped.data(), dropped.size()));
  REQUIRE(client->Send(TaskFrame(8, "after")));
  REQUIRE(server.inbox().WaitForFrames(1));
  CHECK(server.inbox().frames().at(0).task().function() == "after");
  CHECK(server.inbox().closes() == 0);
  io.Stop();
}

TEST_CASE("a payload to a connection without a sink closes that connection", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);  // its handlers take no payloads
  Inbox client_inbox;
  auto client = Client(io, server.address(), client_inbox);
  REQUIRE(client->SendWithPayload(TaskFrame(1), "abc", 3));
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForClose());
  CHECK(server.inbox(0).close_reason() == "unexpected or oversized payload");
  CHECK(server.inbox(0).frames().empty());
  io.Stop();
}

// The raw header of a frame with a payload: the flagged length, then the payload's length.
std::string PayloadHeader(const std::string& body, uint64_t payload) {
  std::string header = testing::LengthPrefix(static_cast<uint32_t>(body.size()) | (1u << 31));
  header.append(reinterpret_cast<const char*>(&payload), 8);  // little-endian, as this host
  return header + body;
}

TEST_CASE("a payload before the hello or over the limit closes the connection", "[net]") {
  IoPool io(1, "test-io");
  SinkListener server(io, 1024);
  auto peer = RawPeer::Connect(server.port());
  SECTION("before the hello") {
    peer->Write(PayloadHeader(MakeHello(kToken, "").SerializeAsString(), 4) + "abcd");
  }
  SECTION("a payload length over the frame limit") {
    peer->Write(Framed(MakeHello(kToken, "")));
    peer->Write(PayloadHeader(TaskFrame(0).SerializeAsString(), uint64_t{1} << 40));
  }
  CHECK(peer->WaitClosed(kLongWait));
  CHECK(server.inbox().frames().empty());
  io.Stop();
}

}  // namespace
}  // namespace lumen::net
