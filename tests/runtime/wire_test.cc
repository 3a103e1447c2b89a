#include "runtime/internal/wire.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lumen::internal {
namespace {

// Long enough never to expire in a passing test; only bounds a failing one.
constexpr absl::Duration kLongWait = absl::Seconds(30);

proto::Frame TaskFrame(uint64_t seq, std::string function = "f") {
  proto::Frame frame;
  frame.mutable_task()->set_seq(seq);
  frame.mutable_task()->set_function(std::move(function));
  return frame;
}

proto::Frame HelloFrame(const std::string& token, const std::string& address) {
  proto::Frame frame;
  frame.mutable_hello()->set_token(token);
  frame.mutable_hello()->set_address(address);
  return frame;
}

// Records what one connection's handlers saw; waits for it with a deadline.
class Inbox {
 public:
  // With `echo`, every frame is queued back to the sender and flushed at the batch's end.
  Connection::Handlers Handlers(bool echo = false) {
    return {
        .on_frame =
            [this, echo](Connection& conn, proto::Frame& frame) {
              if (echo) conn.Send(frame, /*flush=*/false);
              absl::MutexLock lock(&mu_);
              frames_.push_back(frame);
            },
        .on_batch_end =
            [echo](Connection& conn) {
              if (echo) conn.Flush();
            },
        .on_close =
            [this](Connection&, const std::string& reason) {
              absl::MutexLock lock(&mu_);
              ++closes_;
              reason_ = reason;
            },
    };
  }

  bool WaitForFrames(size_t n) {
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return frames_.size() >= n; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kLongWait);
  }
  bool WaitForClose() {
    auto closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closes_ > 0; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&closed), kLongWait);
  }

  std::vector<proto::Frame> frames() {
    absl::MutexLock lock(&mu_);
    return frames_;
  }
  int closes() {
    absl::MutexLock lock(&mu_);
    return closes_;
  }
  std::string close_reason() {
    absl::MutexLock lock(&mu_);
    return reason_;
  }

 private:
  absl::Mutex mu_;
  std::vector<proto::Frame> frames_ ABSL_GUARDED_BY(mu_);
  int closes_ ABSL_GUARDED_BY(mu_) = 0;
  std::string reason_ ABSL_GUARDED_BY(mu_);
};

// A WireServer on 127.0.0.1 that starts every accepted connection with its own Inbox. Closes
// and joins all connections at the end, so no handler outlives the test.
class TestServer {
 public:
  explicit TestServer(bool echo = false) : echo_(echo) {
    auto server = WireServer::Start("127.0.0.1", 0,
                                    [this](std::shared_ptr<Connection> conn) { OnAccept(conn); });
    REQUIRE(server.ok());
    server_ = std::move(*server);
    REQUIRE(server_->port() > 0);
  }
  ~TestServer() {
    server_->Stop();
    absl::MutexLock lock(&mu_);
    for (auto& conn : conns_) {
      conn->Close();
      conn->Join();
    }
  }

  WireServer& server() { return *server_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  bool WaitForAccepted(size_t n) {
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return conns_.size() >= n; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kLongWait);
  }
  std::shared_ptr<Connection> conn(size_t i) {
    absl::MutexLock lock(&mu_);
    return conns_.at(i);
  }
  Inbox& inbox(size_t i) {
    absl::MutexLock lock(&mu_);
    return *inboxes_.at(i);
  }

 private:
  void OnAccept(std::shared_ptr<Connection> conn) {
    absl::MutexLock lock(&mu_);
    inboxes_.push_back(std::make_unique<Inbox>());
    conn->Start(inboxes_.back()->Handlers(echo_));
    conns_.push_back(std::move(conn));
  }

  const bool echo_;
  std::unique_ptr<WireServer> server_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Inbox>> inboxes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Connection>> conns_ ABSL_GUARDED_BY(mu_);
};

// A connected, started client connection with its Inbox; closed and joined at the end.
class TestClient {
 public:
  explicit TestClient(const std::string& address) {
    auto conn = Connection::Connect(address, absl::Seconds(5));
    REQUIRE(conn.ok());
    conn_ = std::move(*conn);
    conn_->Start(inbox_.Handlers());
  }
  ~TestClient() {
    conn_->Close();
    conn_->Join();
  }
  Connection& conn() { return *conn_; }
  Inbox& inbox() { return inbox_; }

 private:
  Inbox inbox_;
  std::shared_ptr<Connection> conn_;
};

// A plain blocking TCP socket connected to 127.0.0.1:port, for writing raw bytes.
class RawSocket {
 public:
  explicit RawSocket(int port) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    timeval timeout{.tv_sec = absl::ToInt64Seconds(kLongWait), .tv_usec = 0};
    REQUIRE(setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) == 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~RawSocket() { close(fd_); }

  void Write(const std::string& bytes) {
    REQUIRE(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // True once the peer has closed: recv reports end of stream or a reset (not a timeout).
  bool PeerClosed() {
    char byte;
    const ssize_t n = recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  const int fd_;
};

std::string LengthPrefix(uint32_t size) {
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &size, 4);  // The wire format is little-endian, as is this host.
  return bytes;
}

std::string Framed(const proto::Frame& frame) {
  const std::string body = frame.SerializeAsString();
  return LengthPrefix(static_cast<uint32_t>(body.size())) + body;
}

TEST_CASE("a client and the server it connected to exchange frames both ways", "[wire]") {
  TestServer server;
  TestClient client(server.address());
  CHECK(client.conn().peer() == server.address());

  REQUIRE(client.conn().Send(HelloFrame("secret", "127.0.0.1:9999")));
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  const proto::Frame hello = server.inbox(0).frames().at(0);
  REQUIRE(hello.has_hello());
  CHECK(hello.hello().token() == "secret");
  CHECK(hello.hello().address() == "127.0.0.1:9999");

  REQUIRE(server.conn(0)->Send(TaskFrame(42, "square")));
  REQUIRE(client.inbox().WaitForFrames(1));
  const proto::Frame task = client.inbox().frames().at(0);
  REQUIRE(task.has_task());
  CHECK(task.task().seq() == 42);
  CHECK(task.task().function() == "square");

  CHECK(server.inbox(0).closes() == 0);
  CHECK(client.inbox().closes() == 0);
}

TEST_CASE("each accepted connection gets only its own client's frames", "[wire]") {
  TestServer server;
  constexpr int kClients = 3;
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<TestClient>(server.address()));
    for (int j = 0; j < 10; ++j) REQUIRE(clients.back()->conn().Send(TaskFrame(i)));
  }
  REQUIRE(server.WaitForAccepted(kClients));
  std::vector<int> seen;
  for (int i = 0; i < kClients; ++i) {
    REQUIRE(server.inbox(i).WaitForFrames(10));
    const auto frames = server.inbox(i).frames();
    CHECK(frames.size() == 10);
    for (const auto& frame : frames) CHECK(frame.task().seq() == frames[0].task().seq());
    seen.push_back(static_cast<int>(frames[0].task().seq()));
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<int>{0, 1, 2});
}

TEST_CASE("frames queued without flushing all arrive in order after one Flush", "[wire]") {
  TestServer server;
  TestClient client(server.address());
  REQUIRE(server.WaitForAccepted(1));

  // Sizes vary, and some frames exceed the reader's initial 256 KiB buffer.
  constexpr int kFrames = 2000;
  auto function_for = [](int i) {
    return std::string(i % 500 == 7 ? 300 << 10 : (i * 37) % 5000, static_cast<char>('a' + i % 26));
  };
  for (int i = 0; i < kFrames; ++i) {
    REQUIRE(client.conn().Send(TaskFrame(i, function_for(i)), /*flush=*/false));
  }
  // Nothing was written yet (this cannot catch every premature write, but sees most).
  CHECK(server.inbox(0).frames().empty());

  client.conn().Flush();
  REQUIRE(server.inbox(0).WaitForFrames(kFrames));
  const auto frames = server.inbox(0).frames();
  REQUIRE(frames.size() == kFrames);
  for (int i = 0; i < kFrames; ++i) {
    REQUIRE(frames[i].task().seq() == static_cast<uint64_t>(i));
    REQUIRE(frames[i].task().function() == function_for(i));
  }
}

TEST_CASE("frames sent from many threads at once all arrive, each thread's in order", "[wire]") {
  TestServer server;
  TestClient client(server.address());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&client, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every 10th send flushes; the others rely on a later flush from any thread.
        client.conn().Send(TaskFrame((static_cast<uint64_t>(t) << 32) | static_cast<uint64_t>(i)),
                           i % 10 == 9);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  client.conn().Flush();

  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(size_t{kThreads} * kPerThread));
  std::vector<uint64_t> next(kThreads, 0);
  for (const auto& frame : server.inbox(0).frames()) {
    const uint64_t thread = frame.task().seq() >> 32;
    REQUIRE(thread < kThreads);
    REQUIRE((frame.task().seq() & 0xffffffffu) == next[thread]);
    ++next[thread];
  }
  CHECK(next == std::vector<uint64_t>(kThreads, kPerThread));
}

TEST_CASE("replies queued in on_frame and flushed at the batch's end reach the peer", "[wire]") {
  TestServer server(/*echo=*/true);
  TestClient client(server.address());
  constexpr int kFrames = 500;
  for (int i = 0; i < kFrames; ++i) client.conn().Send(TaskFrame(i), /*flush=*/false);
  client.conn().Flush();

  REQUIRE(client.inbox().WaitForFrames(kFrames));
  const auto echoed = client.inbox().frames();
  for (int i = 0; i < kFrames; ++i) REQUIRE(echoed[i].task().seq() == static_cast<uint64_t>(i));
}

TEST_CASE("a frame of exactly kMaxFrameBytes is delivered", "[wire]") {
  TestServer server;
  TestClient client(server.address());
  proto::Frame big = HelloFrame("", "");
  // The token's length prefix and the hello's take 4 bytes each at this size, plus 2 tag bytes.
  big.mutable_hello()->mutable_token()->assign(kMaxFrameBytes - 10, 't');
  REQUIRE(big.ByteSizeLong() == kMaxFrameBytes);

  REQUIRE(client.conn().Send(big));
  REQUIRE(client.conn().Send(TaskFrame(1)));
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(2));
  const auto frames = server.inbox(0).frames();
  CHECK(frames[0].hello().token().size() == kMaxFrameBytes - 10);
  CHECK(frames[1].task().seq() == 1);
  CHECK(server.inbox(0).closes() == 0);
}

TEST_CASE("a frame declared larger than kMaxFrameBytes closes the connection, not the server",
          "[wire]") {
  TestServer server;
  {
    RawSocket raw(server.server().port());
    REQUIRE(server.WaitForAccepted(1));

    SECTION("one byte over the limit") { raw.Write(LengthPrefix(kMaxFrameBytes + 1)); }
    SECTION("the largest length a prefix can declare") { raw.Write(LengthPrefix(UINT32_MAX)); }

    REQUIRE(server.inbox(0).WaitForClose());
    CHECK_THAT(server.inbox(0).close_reason(), Catch::Contains("exceeds the limit"));
    CHECK(server.inbox(0).frames().empty());
    CHECK(server.conn(0)->closed());
    CHECK(raw.PeerClosed());
  }

  // The server still serves new connections.
  TestClient client(server.address());
  REQUIRE(client.conn().Send(TaskFrame(5)));
  REQUIRE(server.WaitForAccepted(2));
  REQUIRE(server.inbox(1).WaitForFrames(1));
  CHECK(server.inbox(1).frames()[0].task().seq() == 5);
}

TEST_CASE("bytes that do not parse as a frame close the connection", "[wire]") {
  TestServer server;
  RawSocket raw(server.server().port());
  REQUIRE(server.WaitForAccepted(1));
  size_t good_frames = 0;

  // A varint tag whose continuation bits never end within the declared 5 bytes.
  const std::string garbage = LengthPrefix(5) + std::string(5, '\xff');
  SECTION("garbage first") { raw.Write(garbage); }
  SECTION("garbage after a good frame, in the same write") {
    raw.Write(Framed(TaskFrame(3)) + garbage);
    good_frames = 1;
  }

  REQUIRE(server.inbox(0).WaitForClose());
  CHECK(server.inbox(0).close_reason() == "malformed frame");
  CHECK(server.inbox(0).frames().size() == good_frames);
  CHECK(raw.PeerClosed());
}

TEST_CASE("closing one side of a connection runs the other side's on_close", "[wire]") {
  TestServer server;
  TestClient client(server.address());
  REQUIRE(server.WaitForAccepted(1));
  std::shared_ptr<Connection> server_side = server.conn(0);

  SECTION("the client closes") {
    client.conn().Close();
    client.conn().Close();  // Idempotent.
    CHECK(client.conn().closed());
    CHECK_FALSE(client.conn().Send(TaskFrame(1)));
    REQUIRE(server.inbox(0).WaitForClose());
    REQUIRE(client.inbox().WaitForClose());
    server_side->Join();
    client.conn().Join();
    CHECK(server_side->closed());
  }

  SECTION("the server closes") {
    server_side->Close();
    REQUIRE(client.inbox().WaitForClose());
    REQUIRE(server.inbox(0).WaitForClose());
    client.conn().Join();
    server_side->Join();
    CHECK(client.conn().closed());
    CHECK_FALSE(client.conn().Send(TaskFrame(1)));
  }

  // on_close ran exactly once on each side.
  CHECK(server.inbox(0).closes() == 1);
  CHECK(client.inbox().closes() == 1);
}

TEST_CASE("connecting to a port nobody listens on is UNAVAILABLE and names the address", "[wire]") {
  // A port bound but not listening: connecting to it is refused, and nobody else can take it.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));

  auto conn = Connection::Connect(address, absl::Seconds(5));
  close(fd);
  REQUIRE_FALSE(conn.ok());
  CHECK(conn.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(conn.status().message()), Catch::Contains(address));
}

TEST_CASE("connecting to a malformed address is INVALID_ARGUMENT", "[wire]") {
  auto conn = Connection::Connect("127.0.0.1:notaport", absl::Seconds(5));
  REQUIRE_FALSE(conn.ok());
  CHECK(conn.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(conn.status().message()), Catch::Contains("127.0.0.1:notaport"));
}

TEST_CASE("a stopped server accepts no new connections", "[wire]") {
  TestServer server;
  const std::string address = server.address();
  server.server().Stop();
  auto conn = Connection::Connect(address, absl::Seconds(5));
  CHECK_FALSE(conn.ok());
}

TEST_CASE("ParseHostPort splits host:port and rejects malformed addresses", "[wire]") {
  std::string host;
  int port = 0;

  SECTION("well-formed addresses") {
    REQUIRE(ParseHostPort("127.0.0.1:8080", &host, &port).ok());
    CHECK(host == "127.0.0.1");
    CHECK(port == 8080);
    REQUIRE(ParseHostPort("node-1.example:65535", &host, &port).ok());
    CHECK(host == "node-1.example");
    CHECK(port == 65535);
    REQUIRE(ParseHostPort("h:1", &host, &port).ok());
    CHECK(port == 1);
  }

  SECTION("malformed addresses") {
    const std::string address =
        GENERATE(as<std::string>{}, "nohost", "h:0", "h:99999", "h:abc", ":80", "h:", "");
    const absl::Status status = ParseHostPort(address, &host, &port);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(status.message()), Catch::Contains("'" + address + "'"));
    CHECK(host.empty());
    CHECK(port == 0);
  }
}

}  // namespace
}  // namespace lumen::internal
