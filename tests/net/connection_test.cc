#include "net/connection.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

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
using testing::LengthPrefix;
using testing::RawPeer;
using testing::RawServer;
using testing::TaskFrame;
using testing::TestListener;

std::shared_ptr<Connection> ConnectClient(IoPool& io, const std::string& address, Inbox& inbox,
                                          const ConnectionOptions& options = FastOptions()) {
  auto conn = Connection::Connect(io, address, absl::Seconds(5), options);
  REQUIRE(conn.ok());
  (*conn)->Start(inbox.Handlers());
  return *conn;
}

TEST_CASE("a client that sends the hello exchanges frames with the listener both ways", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  Inbox client_inbox;
  auto client = ConnectClient(io, server.address(), client_inbox);
  REQUIRE(client->Send(MakeHello(kToken, "127.0.0.1:9999", 7)));
  REQUIRE(client->Send(TaskFrame(42, "square")));
  REQUIRE(server.WaitForAccepted(1));
  CHECK(server.hello(0).address() == "127.0.0.1:9999");
  CHECK(server.hello(0).client_id() == 7);
  REQUIRE(server.inbox(0).WaitForFrames(1));
  CHECK(server.inbox(0).frames().at(0).task().function() == "square");

  REQUIRE(server.conn(0)->Send(TaskFrame(43, "cube")));
  REQUIRE(client_inbox.WaitForFrames(1));
  CHECK(client_inbox.frames().at(0).task().seq() == 43);
  client->Close();
  REQUIRE(client_inbox.WaitForClose());
  CHECK(client_inbox.close_reason() == "closed locally");
  io.Stop();
}

TEST_CASE("frames queued by many threads arrive complete and in each thread's order", "[net]") {
  IoPool io(2, "test-io");
  TestListener server(io);
  Inbox client_inbox;
  auto client = ConnectClient(io, server.address(), client_inbox);
  REQUIRE(client->Send(MakeHello(kToken, "")));
  constexpr int kThreads = 4;
  constexpr int kFrames = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFrames; ++i) {
        REQUIRE(
            client->Send(TaskFrame(static_cast<uint64_t>(t) * kFrames + i, std::string(100, 'x')),
                         /*flush=*/i % 7 == 0));
      }
      client->Flush();
    });
  }
  for (auto& thread : threads) thread.join();
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(static_cast<size_t>(kThreads) * kFrames));
  std::vector<int64_t> last(kThreads, -1);
  for (const auto& frame : server.inbox(0).frames()) {
    const int t = static_cast<int>(frame.task().seq() / kFrames);
    const auto i = static_cast<int64_t>(frame.task().seq() % kFrames);
    CHECK(i == last[t] + 1);
    last[t] = i;
  }
  CHECK(server.inbox(0).closes() == 0);
  io.Stop();
}

TEST_CASE("a connection whose first frame is not a hello is closed", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto peer = RawPeer::Connect(server.port());
  peer->Write(Framed(TaskFrame(1)));
  CHECK(peer->WaitClosed());
  CHECK(server.accepted() == 0);
  io.Stop();
}

TEST_CASE("a wrong token is refused and the listener goes on serving others", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto bad = RawPeer::Connect(server.port());
  bad->Write(Framed(MakeHello("wrong-token", "")));
  CHECK(bad->WaitClosed());
  auto good = RawPeer::Connect(server.port());
  good->Write(Framed(MakeHello(kToken, "")) + Framed(TaskFrame(5)));
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  CHECK(server.accepted() == 1);
  io.Stop();
}

TEST_CASE("garbage bytes close only the connection that sent them", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto good = RawPeer::Connect(server.port());
  good->Write(Framed(MakeHello(kToken, "")));
  auto bad = RawPeer::Connect(server.port());
  bad->Write(Framed(MakeHello(kToken, "")));
  REQUIRE(server.WaitForAccepted(2));
  SECTION("bytes that do not parse") { bad->Write(LengthPrefix(8) + std::string(8, '\xff')); }
  SECTION("a length over the frame limit") { bad->Write(LengthPrefix(0xffffffffu)); }
  CHECK(bad->WaitClosed());
  good->Write(Framed(TaskFrame(9)));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  CHECK(server.inbox(0).closes() == 0);
  CHECK(server.inbox(1).frames().empty());
  io.Stop();
}

TEST_CASE("a truncated frame delivers nothing and ends in one close", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto peer = RawPeer::Connect(server.port());
  peer->Write(Framed(MakeHello(kToken, "")));
  REQUIRE(server.WaitForAccepted(1));
  const std::string frame = Framed(TaskFrame(3, std::string(1000, 'y')));
  peer->Write(frame.substr(0, frame.size() / 2));
  peer.reset();  // the peer goes away mid-frame
  REQUIRE(server.inbox(0).WaitForClose());
  CHECK(server.inbox(0).frames().empty());
  CHECK(server.inbox(0).closes() == 1);
  io.Stop();
}

TEST_CASE("before the hello only a few KiB are accepted and nothing is buffered for a claim",
          "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  SECTION("a huge claimed length is refused at once") {
    auto peer = RawPeer::Connect(server.port());
    peer->Write("\xff\xff\xff\x03");
    CHECK(peer->WaitClosed(absl::Seconds(2)));
  }
  SECTION("a hello larger than the limit is refused") {
    auto peer = RawPeer::Connect(server.port());
    peer->Write(Framed(MakeHello(kToken, std::string(8192, 'a'))));
    CHECK(peer->WaitClosed(absl::Seconds(2)));
  }
  CHECK(server.accepted() == 0);
  // The peer sees the close as soon as the socket is shut down; the count drops just after, on
  // the connection's strand.
  const absl::Time deadline = absl::Now() + kLongWait;
  while (server.listener().unauthenticated() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  CHECK(server.listener().unauthenticated() == 0);
  io.Stop();
}

TEST_CASE("a connection that never sends its hello is closed after the deadline", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto peer = RawPeer::Connect(server.port());
  const absl::Time start = absl::Now();
  CHECK(peer->WaitClosed());
  const absl::Duration waited = absl::Now() - start;
  CHECK(waited >= absl::Milliseconds(250));
  CHECK(waited < absl::Seconds(5));
  io.Stop();
}

TEST_CASE("connections that have not sent a hello are capped", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io, FastOptions(), /*max_unauthenticated=*/4);
  std::vector<std::unique_ptr<RawPeer>> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(RawPeer::Connect(server.port()));
  // Six of the ten are closed on accept; four wait for their hello deadline (300 ms).
  std::vector<absl::Duration> closed_after(silent.size(), absl::InfiniteDuration());
  const absl::Time start = absl::Now();
  size_t open = silent.size();
  while (open > 0 && absl::Now() - start < kLongWait) {
    CHECK(server.listener().unauthenticated() <= 4);
    for (size_t i = 0; i < silent.size(); ++i) {
      if (closed_after[i] != absl::InfiniteDuration()) continue;
      if (silent[i]->WaitClosed(absl::Milliseconds(5))) {
        closed_after[i] = absl::Now() - start;
        --open;
      }
    }
  }
  REQUIRE(open == 0);
  int early = 0;
  for (const auto& after : closed_after) early += after < absl::Milliseconds(200) ? 1 : 0;
  CHECK(early == 6);
  // Once the silent ones timed out, a real client gets through.
  auto good = RawPeer::Connect(server.port());
  good->Write(Framed(MakeHello(kToken, "")) + Framed(TaskFrame(1)));
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  io.Stop();
}

TEST_CASE("a peer that never reads does not block the writer, and is closed past the bound",
          "[net]") {
  IoPool io(1, "test-io");
  RawServer server;
  ConnectionOptions options = FastOptions();
  options.peer_timeout = absl::Seconds(20);  // this peer is not silent: it just does not read
  options.max_outbound_bytes = size_t{8} << 20;
  Inbox inbox;
  auto client = ConnectClient(io, server.address(), inbox, options);
  server.Accept();
  const std::string chunk(64 << 10, 'z');
  const absl::Time start = absl::Now();
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) {
    proto::Frame frame = TaskFrame(i, chunk);
    refused = !client->Send(frame);
  }
  CHECK(refused);
  CHECK(absl::Now() - start < absl::Seconds(5));  // no Send blocked on the full socket
  REQUIRE(inbox.WaitForClose());
  CHECK(inbox.close_reason() == "the peer does not read");
  io.Stop();
}

TEST_CASE("a peer that goes silent is declared gone after the peer timeout", "[net]") {
  IoPool io(1, "test-io");
  RawServer server;
  Inbox inbox;
  const absl::Time start = absl::Now();
  auto client = ConnectClient(io, server.address(), inbox);
  server.Accept();  // accepted, but it never answers a ping
  REQUIRE(inbox.WaitForClose());
  const absl::Duration waited = absl::Now() - start;
  CHECK(waited >= absl::Milliseconds(500));
  CHECK(waited < absl::Seconds(5));
  CHECK(inbox.close_reason().find("sent nothing") != std::string::npos);
  io.Stop();
}

TEST_CASE("an idle but live peer answers pings and stays connected", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  Inbox inbox;
  auto client = ConnectClient(io, server.address(), inbox);
  REQUIRE(client->Send(MakeHello(kToken, "")));
  REQUIRE(server.WaitForAccepted(1));
  // Three peer timeouts of silence from the application on both sides.
  CHECK_FALSE(inbox.WaitForClose(absl::Milliseconds(1800)));
  CHECK(server.inbox(0).closes() == 0);
  CHECK(inbox.frames().empty());  // pings and pongs never reach the handlers
  REQUIRE(client->Send(TaskFrame(1)));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  io.Stop();
}

TEST_CASE("a paused connection delivers nothing until it is resumed", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  Inbox inbox;
  auto client = ConnectClient(io, server.address(), inbox);
  REQUIRE(client->Send(MakeHello(kToken, "")));
  REQUIRE(server.WaitForAccepted(1));
  client->PauseReading();
  // Let a read that was already pending finish with the first frame, then pause holds.
  REQUIRE(server.conn(0)->Send(TaskFrame(1)));
  REQUIRE(inbox.WaitForFrames(1));
  for (int i = 2; i <= 5; ++i) REQUIRE(server.conn(0)->Send(TaskFrame(i)));
  CHECK_FALSE(inbox.WaitForFrames(2, absl::Milliseconds(800)));  // and not declared silent
  CHECK(inbox.closes() == 0);
  client->ResumeReading();
  REQUIRE(inbox.WaitForFrames(5));
  io.Stop();
}

// A peer that dies right after it sent replies: the first write to it may fail before those
// replies were read. They are still delivered, then the close.
TEST_CASE("frames a dead peer sent are delivered even when a write to it failed first", "[net]") {
  IoPool io(1, "test-io");
  Inbox inbox;
  std::shared_ptr<Connection> client;
  // Long enough that a slow machine still resumes reading before the peer timeout ends it.
  ConnectionOptions options = FastOptions();
  options.peer_timeout = absl::Seconds(5);
  auto writes_fail = [&] {
    for (int i = 0; i < 200; ++i) {
      if (!client->Send(TaskFrame(1000 + i))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  };
  auto drain_and_check = [&] {
    REQUIRE(writes_fail());
    CHECK(inbox.closes() == 0);  // not before what was sent is read
    client->ResumeReading();
    REQUIRE(inbox.WaitForClose());
    CHECK(inbox.frames().size() == 50);
    CHECK_THAT(inbox.close_reason(), Catch::Contains("write failed"));
    // Writes after the failure are refused; FlushAndWait says nothing was handed over.
    CHECK_FALSE(client->Send(TaskFrame(1)));
    CHECK_FALSE(client->FlushAndWait(kLongWait));
  };
  SECTION("over the Unix socket") {
    TestListener server(io);
    client = ConnectClient(io, server.address(), inbox, options);
    REQUIRE(client->local());
    REQUIRE(client->Send(MakeHello(kToken, "")));
    REQUIRE(server.WaitForAccepted(1));
    client->PauseReading();
    REQUIRE(server.conn(0)->Send(TaskFrame(1)));
    REQUIRE(inbox.WaitForFrames(1));  // a read that was pending takes it
    for (int i = 2; i <= 50; ++i) REQUIRE(server.conn(0)->Send(TaskFrame(i), /*flush=*/false));
    REQUIRE(server.conn(0)->FlushAndWait(kLongWait));
    server.conn(0)->Close("dying");
    drain_and_check();
  }
  SECTION("over TCP, reset by the peer") {
    RawServer server;
    client = ConnectClient(io, server.address(), inbox, options);
    REQUIRE_FALSE(client->local());
    const int fd = server.Accept();
    client->PauseReading();
    std::string replies;
    for (int i = 1; i <= 50; ++i) replies += Framed(TaskFrame(i));
    REQUIRE(write(fd, replies.data(), 1) == 1);  // the pending read takes a byte
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    REQUIRE(write(fd, replies.data() + 1, replies.size() - 1) ==
            static_cast<ssize_t>(replies.size() - 1));
    REQUIRE(client->Send(MakeHello(kToken, "")));  // unread: the close below resets
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.Reset(fd);
    drain_and_check();
  }
  io.Stop();
}

TEST_CASE("FlushAndWait returns once the bytes are handed to the kernel", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  Inbox inbox;
  auto client = ConnectClient(io, server.address(), inbox);
  REQUIRE(client->Send(MakeHello(kToken, ""), /*flush=*/false));
  for (int i = 0; i < 100; ++i) REQUIRE(client->Send(TaskFrame(i), /*flush=*/false));
  CHECK(client->outbound_bytes() > 0);
  CHECK(client->FlushAndWait(kLongWait));
  CHECK(client->outbound_bytes() == 0);
  REQUIRE(server.WaitForAccepted(1));
  REQUIRE(server.inbox(0).WaitForFrames(100));
  io.Stop();
}

TEST_CASE("connecting to a port nobody listens on fails with the address", "[net]") {
  IoPool io(1, "test-io");
  auto result = Connection::Connect(io, "127.0.0.1:1", absl::Seconds(5));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::string(result.status().message()).find("127.0.0.1:1") != std::string::npos);
  auto malformed = Connection::Connect(io, "127.0.0.1:notaport", absl::Seconds(5));
  CHECK(malformed.status().code() == absl::StatusCode::kInvalidArgument);
  io.Stop();
}

TEST_CASE("the thread count of a process does not grow with its connections", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  auto threads = [] {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
      (void)entry;
      ++n;
    }
    return n;
  };
  const int before = threads();
  std::vector<std::shared_ptr<Connection>> clients;
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (int i = 0; i < 200; ++i) {
    inboxes.push_back(std::make_unique<Inbox>());
    clients.push_back(ConnectClient(io, server.address(), *inboxes.back()));
    REQUIRE(clients.back()->Send(MakeHello(kToken, "")));
  }
  REQUIRE(server.WaitForAccepted(200));
  CHECK(threads() == before);
  for (auto& client : clients) client->Close();
  io.Stop();
}

TEST_CASE("ConstantTimeEquals compares whole secrets", "[net]") {
  CHECK(ConstantTimeEquals("abc", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abc", "abd"));
  CHECK_FALSE(ConstantTimeEquals("abc", "abcd"));
  CHECK_FALSE(ConstantTimeEquals("", "a"));
  CHECK(ConstantTimeEquals("", ""));
}

TEST_CASE("ParseHostPort splits host:port and rejects malformed addresses", "[net]") {
  std::string host;
  int port = 0;
  REQUIRE(ParseHostPort("127.0.0.1:8080", &host, &port).ok());
  CHECK(host == "127.0.0.1");
  CHECK(port == 8080);
  for (const std::string bad : {"", "127.0.0.1", ":80", "h:0", "h:65536", "h:x"}) {
    CHECK(ParseHostPort(bad, &host, &port).code() == absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace lumen::net
