// The same-host path of the fast path: a listener's Unix socket in the abstract namespace
// (net/connection.h, LocalName), and the client's choice between it and TCP.
#include <poll.h>
#include <signal.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <string>

#include "net/connection.h"
#include "net/io_pool.h"
#include "net/listener.h"
#include "tests/net/net_test_util.h"

namespace lumen::net {
namespace {

using testing::FastOptions;
using testing::Inbox;
using testing::kToken;
using testing::RawServer;
using testing::TaskFrame;
using testing::TestListener;

TEST_CASE("a client on the listener's host talks to it over the Unix socket", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  Inbox inbox;
  auto conn = Connection::Connect(io, server.address(), absl::Seconds(5), FastOptions());
  REQUIRE(conn.ok());
  (*conn)->Start(inbox.Handlers());
  CHECK((*conn)->local());
  CHECK((*conn)->peer() == server.address());
  REQUIRE((*conn)->Send(MakeHello(kToken, "")));
  REQUIRE((*conn)->Send(TaskFrame(1, "square")));
  REQUIRE(server.WaitForAccepted(1));
  CHECK(server.conn(0)->local());
  CHECK(server.conn(0)->peer() == absl::StrCat("pid ", getpid(), " on this host"));
  REQUIRE(server.inbox(0).WaitForFrames(1));
  REQUIRE(server.conn(0)->Send(TaskFrame(2, "cube")));
  REQUIRE(inbox.WaitForFrames(1));
  CHECK(inbox.frames().at(0).task().function() == "cube");
  io.Stop();
}

TEST_CASE("a client of a server without a Unix socket connects over TCP", "[net]") {
  IoPool io(1, "test-io");
  RawServer server;  // TCP only, as a node on another host is
  auto conn = Connection::Connect(io, server.address(), absl::Seconds(5), FastOptions());
  REQUIRE(conn.ok());
  server.Accept();
  CHECK_FALSE((*conn)->local());
  CHECK((*conn)->peer() == server.address());
  (*conn)->Close();
  io.Stop();
}

// In a child that runs as another user: listens on `name` and reports (one byte on `report`)
// once it listens, then how many bytes its first client sent before closing (at most 255).
[[noreturn]] void SquatAsNobody(const std::string& name, int report) {
  if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), size) != 0 || listen(fd, 4) != 0) {
    _exit(3);
  }
  char ready = 1;
  if (write(report, &ready, 1) != 1) _exit(4);
  pollfd wait{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&wait, 1, 10000) != 1) _exit(5);
  const int client = accept(fd, nullptr, nullptr);
  size_t got = 0;
  char buffer[4096];
  pollfd in{.fd = client, .events = POLLIN, .revents = 0};
  while (poll(&in, 1, 2000) == 1) {
    const ssize_t n = read(client, buffer, sizeof(buffer));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  const auto count = static_cast<char>(std::min<size_t>(got, 255));
  if (write(report, &count, 1) != 1) _exit(6);
  _exit(0);
}

TEST_CASE("a Unix socket another user took first gets no token and the client uses TCP", "[net]") {
  if (geteuid() != 0) {
    WARN("not root: cannot run the squatter as another user; skipped");
    return;
  }
  // A port that is free now; the squatter takes its same-host name before the listener starts.
  auto free_port = PickFreePort("127.0.0.1");
  REQUIRE(free_port.ok());
  const int port = *free_port;
  int pipe_fds[2];
  REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
  const pid_t child = fork();  // before any thread of this test starts
  REQUIRE(child >= 0);
  if (child == 0) SquatAsNobody(LocalName("127.0.0.1", port), pipe_fds[1]);
  close(pipe_fds[1]);
  char byte = 0;
  REQUIRE(read(pipe_fds[0], &byte, 1) == 1);  // it listens

  {
    IoPool io(1, "test-io");
    Inbox server_inbox;
    auto listener =
        Listener::Start(io, "127.0.0.1", port, kToken, FastOptions(),
                        [&server_inbox](const std::shared_ptr<Connection>&, const proto::Hello&) {
                          return server_inbox.Handlers();
                        });
    REQUIRE(listener.ok());  // its own Unix socket could not be made: TCP only
    Inbox inbox;
    auto conn =
        Connection::Connect(io, absl::StrCat("127.0.0.1:", port), absl::Seconds(5), FastOptions());
    REQUIRE(conn.ok());
    (*conn)->Start(inbox.Handlers());
    CHECK_FALSE((*conn)->local());
    REQUIRE((*conn)->Send(MakeHello(kToken, "")));
    REQUIRE((*conn)->Send(TaskFrame(7)));
    REQUIRE(server_inbox.WaitForFrames(1));
    (*listener)->Stop();
    (*conn)->Close();
    io.Stop();
  }
  byte = 1;
  CHECK(read(pipe_fds[0], &byte, 1) == 1);
  CHECK(byte == 0);  // the squatter was connected to, and closed before a byte was sent
  close(pipe_fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace lumen::net
