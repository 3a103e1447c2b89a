// Helpers for the net/ tests: a scripted raw TCP peer, an inbox that records what a
// connection's handlers saw, and a listener that keeps its accepted connections.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/io_pool.h"
#include "net/listener.h"

namespace lumen::net::testing {

// Long enough never to expire in a passing test; only bounds a failing one.
inline constexpr absl::Duration kLongWait = absl::Seconds(30);
inline const std::string kToken = "secret-token";

// Short deadlines so that timeouts are tested in well under a second.
inline ConnectionOptions FastOptions() {
  ConnectionOptions options;
  options.hello_timeout = absl::Milliseconds(300);
  options.ping_interval = absl::Milliseconds(100);
  options.peer_timeout = absl::Milliseconds(600);
  return options;
}

inline proto::Frame TaskFrame(uint64_t seq, std::string function = "f") {
  proto::Frame frame;
  frame.mutable_task()->set_seq(seq);
  frame.mutable_task()->set_function(std::move(function));
  return frame;
}

inline std::string LengthPrefix(uint32_t size) {
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &size, 4);  // the wire format is little-endian, as is this host
  return bytes;
}

inline std::string Framed(const proto::Frame& frame) {
  const std::string body = frame.SerializeAsString();
  return LengthPrefix(static_cast<uint32_t>(body.size())) + body;
}

// Records what one connection's handlers saw; waits for it with a deadline.
class Inbox {
 public:
  Connection::Handlers Handlers() {
    return {
        .on_frame =
            [this](Connection&, proto::Frame& frame) {
              absl::MutexLock lock(&mu_);
              frames_.push_back(frame);
            },
        .on_batch_end = nullptr,
        .on_close =
            [this](Connection&, const std::string& reason) {
              absl::MutexLock lock(&mu_);
              ++closes_;
              reason_ = reason;
            },
    };
  }
  bool WaitForFrames(size_t n, absl::Duration timeout = kLongWait) {
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return frames_.size() >= n; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  bool WaitForClose(absl::Duration timeout = kLongWait) {
    auto closed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closes_ > 0; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&closed), timeout);
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

// A listener on 127.0.0.1 that gives each accepted (authenticated) connection an Inbox.
class TestListener {
 public:
  explicit TestListener(IoPool& io, ConnectionOptions options = FastOptions(),
                        int max_unauthenticated = Listener::kDefaultMaxUnauthenticated) {
    auto listener = Listener::Start(
        io, "127.0.0.1", 0, kToken, options,
        [this](const std::shared_ptr<Connection>& conn, const proto::Hello& hello) {
          absl::MutexLock lock(&mu_);
          inboxes_.push_back(std::make_unique<Inbox>());
          conns_.push_back(conn);
          hellos_.push_back(hello);
          return inboxes_.back()->Handlers();
        },
        max_unauthenticated);
    REQUIRE(listener.ok());
    listener_ = std::move(*listener);
  }
  ~TestListener() {
    listener_->Stop();
    absl::MutexLock lock(&mu_);
    for (auto& conn : conns_) conn->Close("test over");
  }
  Listener& listener() { return *listener_; }
  int port() const { return listener_->port(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", listener_->port()); }
  bool WaitForAccepted(size_t n, absl::Duration timeout = kLongWait) {
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return conns_.size() >= n; };
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  size_t accepted() {
    absl::MutexLock lock(&mu_);
    return conns_.size();
  }
  std::shared_ptr<Connection> conn(size_t i) {
    absl::MutexLock lock(&mu_);
    return conns_.at(i);
  }
  Inbox& inbox(size_t i) {
    absl::MutexLock lock(&mu_);
    return *inboxes_.at(i);
  }
  proto::Hello hello(size_t i) {
    absl::MutexLock lock(&mu_);
    return hellos_.at(i);
  }

 private:
  std::unique_ptr<Listener> listener_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Inbox>> inboxes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Connection>> conns_ ABSL_GUARDED_BY(mu_);
  std::vector<proto::Hello> hellos_ ABSL_GUARDED_BY(mu_);
};

// A blocking POSIX socket: the scripted peer. Either connects to a port or, made with
// Listen(), accepts one connection.
class RawPeer {
 public:
  static std::unique_ptr<RawPeer> Connect(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr = Loopback(port);
    REQUIRE(connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    return std::unique_ptr<RawPeer>(new RawPeer(fd));
  }
  ~RawPeer() { close(fd_); }

  void Write(const std::string& bytes) {
    REQUIRE(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // True once the other end closed (end of stream or reset), false after `timeout`.
  bool WaitClosed(absl::Duration timeout = kLongWait) {
    SetReceiveTimeout(timeout);
    char buffer[4096];
    while (true) {
      const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n > 0) continue;  // data (e.g. pings): keep reading until the end
      return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
  }
  // Reads one frame; false on end of stream or timeout.
  bool ReadFrame(proto::Frame* frame, absl::Duration timeout = kLongWait) {
    SetReceiveTimeout(timeout);
    std::string header = ReadExactly(4);
    if (header.size() < 4) return false;
    uint32_t size = 0;
    std::memcpy(&size, header.data(), 4);
    const std::string body = ReadExactly(size);
    return body.size() == size && frame->ParseFromString(body);
  }
  int fd() const { return fd_; }

 private:
  explicit RawPeer(int fd) : fd_(fd) {}
  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }
  void SetReceiveTimeout(absl::Duration timeout) {
    timeval tv{.tv_sec = absl::ToInt64Seconds(timeout),
               .tv_usec = absl::ToInt64Microseconds(timeout) % 1000000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  std::string ReadExactly(size_t n) {
    std::string out(n, '\0');
    size_t done = 0;
    while (done < n) {
      const ssize_t got = recv(fd_, out.data() + done, n - done, 0);
      if (got <= 0) break;
      done += static_cast<size_t>(got);
    }
    out.resize(done);
    return out;
  }

  const int fd_;
};

// A listening POSIX socket whose accepted peers are scripted (they never read, or never talk).
class RawServer {
 public:
  RawServer() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~RawServer() {
    for (int fd : accepted_) close(fd);
    close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // Accepts one pending connection (blocking) and keeps it open, unread.
  int Accept() {
    const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(fd >= 0);
    // A small receive buffer, so that a peer that does not read fills it quickly.
    const int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    accepted_.push_back(fd);
    return fd;
  }
  // Closes an accepted connection with a reset, as the kernel does for a process that dies
  // with bytes unread.
  void Reset(int fd) {
    const linger abort{.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    close(fd);
    accepted_.erase(std::find(accepted_.begin(), accepted_.end(), fd));
  }

 private:
  const int fd_;
  int port_ = 0;
  std::vector<int> accepted_;
};

}  // namespace lumen::net::testing
