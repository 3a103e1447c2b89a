// Payload frames: raw bytes after a frame, placed where the receiver's sink says.
#include <catch2/catch.hpp>
#include <cerrno>
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
using testing::RawServer;
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

// Counts how many keep-alives were dropped; waits for a count with a deadline.
class ReleaseCounter {
 public:
  // A payload over `bytes` whose keep-alive counts here when it is dropped.
  BorrowedPayload Borrow(const std::string& bytes) {
    return {.data = bytes.data(),
            .size = bytes.size(),
            .keep_alive = std::shared_ptr<const void>(nullptr, [this](const void*) { Add(); })};
  }
  bool WaitFor(int n, absl::Duration timeout = kLongWait) {
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return released_ >= n; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  int released() {
    absl::MutexLock lock(&mu_);
    return released_;
  }

 private:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++released_;
  }
  absl::Mutex mu_;
  int released_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_CASE("borrowed payloads arrive intact, in order with the frames around them", "[net]") {
  IoPool io(1, "test-io");
  constexpr size_t kBig = size_t{20} << 20;
  constexpr size_t kSecond = size_t{1} << 20;
  SinkListener server(io, kBig + kSecond + 4096);
  Inbox client_inbox;
  auto client = Client(io, server.address(), client_inbox);
  const std::string big = Pattern(kBig, 4);
  const std::string second = Pattern(kSecond, 5);
  const std::string small = Pattern(100, 6);
  ReleaseCounter counter;
  REQUIRE(client->Send(TaskFrame(7, "before"), /*flush=*/false));
  REQUIRE(client->SendBorrowed(TaskFrame(0, "big"), counter.Borrow(big)));
  REQUIRE(client->Send(TaskFrame(9, "after")));
  REQUIRE(client->SendBorrowed(TaskFrame(kBig, "second"), counter.Borrow(second),
                               /*flush=*/false));
  // Under kMinBorrowedBytes: copied, so its keep-alive is dropped before the call returns.
  REQUIRE(client->SendBorrowed(TaskFrame(kBig + kSecond, "small"), counter.Borrow(small)));
  REQUIRE(server.inbox().WaitForFrames(5));
  const auto frames = server.inbox().frames();
  CHECK(frames[0].task().function() == "before");
  CHECK(frames[1].task().function() == "big");
  CHECK(frames[2].task().function() == "after");
  CHECK(frames[3].task().function() == "second");
  CHECK(frames[4].task().function() == "small");
  CHECK(server.memory().compare(0, kBig, big) == 0);
  CHECK(server.memory().compare(kBig, kSecond, second) == 0);
  CHECK(server.memory().compare(kBig + kSecond, small.size(), small) == 0);
  CHECK(counter.WaitFor(3));
  CHECK(client->outbound_bytes() == 0);
  CHECK(server.inbox().closes() == 0);
  io.Stop();
}

// Reads exactly `n` bytes from a blocking socket; fewer on end of stream or error.
std::string ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    const ssize_t got = recv(fd, out.data() + done, n - done, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  out.resize(done);
  return out;
}

// Reads one frame and its payload (if any) from a raw socket.
bool ReadPayloadFrame(int fd, proto::Frame* frame, std::string* payload) {
  const std::string prefix = ReadExactly(fd, 4);
  if (prefix.size() < 4) return false;
  uint32_t size = 0;
  std::memcpy(&size, prefix.data(), 4);
  uint64_t payload_size = 0;
  if ((size & (1u << 31)) != 0) {
    size &= ~(1u << 31);
    const std::string length = ReadExactly(fd, 8);
    if (length.size() < 8) return false;
    std::memcpy(&payload_size, length.data(), 8);
  }
  if (!frame->ParseFromString(ReadExactly(fd, size))) return false;
  *payload = ReadExactly(fd, payload_size);
  return payload->size() == payload_size;
}

TEST_CASE("a borrowed payload is held while the peer does not read and sent whole once it does",
          "[net]") {
  IoPool io(1, "test-io");
  RawServer peer;  // accepts, and reads only when this test does
  auto client = Connection::Connect(io, peer.address(), absl::Seconds(5));
  REQUIRE(client.ok());
  Inbox inbox;
  (*client)->Start(inbox.Handlers());
  const int fd = peer.Accept();
  // Once it reads, it reads at a normal pace (Accept made its buffer tiny).
  const int normal = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &normal, sizeof(normal));
  // Far more than the socket buffers take: the last payload cannot leave while nobody reads.
  constexpr size_t kPayload = size_t{16} << 20;
  std::vector<std::string> payloads;
  for (unsigned i = 0; i < 3; ++i) payloads.push_back(Pattern(kPayload, 10 + i));
  ReleaseCounter counter;
  for (unsigned i = 0; i < 3; ++i) {
    REQUIRE((*client)->SendBorrowed(TaskFrame(i, "chunk"), counter.Borrow(payloads[i])));
    REQUIRE((*client)->Send(TaskFrame(100 + i, "between")));
  }
  CHECK_FALSE(counter.WaitFor(3, absl::Milliseconds(300)));
  CHECK_FALSE((*client)->closed());
  for (unsigned i = 0; i < 3; ++i) {
    proto::Frame frame;
    std::string payload;
    REQUIRE(ReadPayloadFrame(fd, &frame, &payload));
    CHECK(frame.task().seq() == i);
    CHECK(payload == payloads[i]);
    REQUIRE(ReadPayloadFrame(fd, &frame, &payload));
    CHECK(frame.task().seq() == 100 + i);
    CHECK(payload.empty());
  }
  CHECK(counter.WaitFor(3));
  CHECK(inbox.closes() == 0);
  (*client)->Close();
  io.Stop();
}

TEST_CASE("closing mid-write drops every borrowed payload's keep-alive exactly once", "[net]") {
  IoPool io(1, "test-io");
  RawServer peer;  // never reads
  auto client = Connection::Connect(io, peer.address(), absl::Seconds(5));
  REQUIRE(client.ok());
  Inbox inbox;
  (*client)->Start(inbox.Handlers());
  peer.Accept();
  const std::string payload = Pattern(size_t{16} << 20, 20);
  ReleaseCounter counter;
  for (int i = 0; i < 3; ++i) {
    REQUIRE((*client)->SendBorrowed(TaskFrame(static_cast<uint64_t>(i)), counter.Borrow(payload)));
  }
  // One is being written (stuck in the full socket), the others wait behind it.
  CHECK_FALSE(counter.WaitFor(1, absl::Milliseconds(300)));
  (*client)->Close("test closes");
  CHECK(counter.WaitFor(3));  // while the connection object still exists
  REQUIRE(inbox.WaitForClose());
  CHECK_FALSE((*client)->SendBorrowed(TaskFrame(9), counter.Borrow(payload)));
  CHECK(counter.released() == 4);  // the refused one is dropped at once
  client->reset();
  io.Stop();
  CHECK(counter.released() == 4);
}

}  // namespace
}  // namespace lumen::net
