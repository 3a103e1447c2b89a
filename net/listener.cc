#include "net/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::net {

struct Listener::State {
  State(IoPool& pool, asio::ip::tcp::acceptor acceptor_in)
      : io(pool), acceptor(std::move(acceptor_in)), local(pool.context()) {}
  IoPool& io;
  asio::ip::tcp::acceptor acceptor;
  asio::local::stream_protocol::acceptor local;  // closed when there is no same-host socket
  std::string token;
  ConnectionOptions options;
  AcceptHandler on_accept;
  int max_unauthenticated = kDefaultMaxUnauthenticated;
  std::shared_ptr<std::atomic<int>> unauthenticated;
  std::atomic<bool> stopped{false};
  std::atomic<int64_t> refused{0};
};

absl::StatusOr<std::unique_ptr<Listener>> Listener::Start(IoPool& io, const std::string& host,
                                                          int port, std::string token,
                                                          ConnectionOptions options,
                                                          AcceptHandler on_accept,
                                                          int max_unauthenticated) {
  std::error_code error;
  const asio::ip::address ip =
      asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IPv4 address"));
  }
  asio::ip::tcp::acceptor acceptor(io.context());
  const asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", error.message()));
  }
  const int bound = acceptor.local_endpoint().port();
  auto state = std::make_shared<State>(io, std::move(acceptor));
  if (LocalTransportEnabled() && !ip.is_unspecified()) {
    // The same-host path (connection.h). Without it local clients use TCP, so a failure only
    // costs speed: it fails when some other process took the name first (clients then find
    // that process's socket, and leave it for TCP unless it runs as their own user).
    const asio::local::stream_protocol::endpoint local(LocalName(ip.to_string(), bound));
    state->local.open(local.protocol(), error);
    if (!error) state->local.bind(local, error);
    if (!error) state->local.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      LUMEN_LOG(WARNING) << "no same-host socket for " << host << ":" << bound << ": "
                         << error.message() << "; local clients use TCP";
      std::error_code ignored;
      state->local.close(ignored);
    }
  }
  state->token = std::move(token);
  state->options = options;
  state->on_accept = std::move(on_accept);
  state->max_unauthenticated = max_unauthenticated;
  state->unauthenticated = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<Listener> listener(new Listener(state, bound));
  asio::post(io.context(), [state] {
    AcceptNext(state);
    if (state->local.is_open()) AcceptLocal(state);
  });
  return listener;
}

Listener::Listener(std::shared_ptr<State> state, int port)
    : state_(std::move(state)), unauthenticated_(state_->unauthenticated), port_(port) {}

Listener::~Listener() { Stop(); }

void Listener::Stop() {
  if (state_->stopped.exchange(true)) return;
  if (state_->io.context().stopped()) {  // no I/O thread runs: nothing races with the close
    std::error_code ignored;
    state_->acceptor.close(ignored);
    state_->local.close(ignored);
    return;
  }
  // Closing the acceptor must happen where its operations run.
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  asio::post(state_->io.context(), [state = state_, done] {
    std::error_code ignored;
    state->acceptor.close(ignored);
    state->local.close(ignored);
    done->set_value();
  });
  if (IoPool::OnIoThread()) return;
  future.wait_for(std::chrono::seconds(5));
}

void Listener::AcceptNext(const std::shared_ptr<State>& state) {
  if (state->stopped.load()) return;
  state->acceptor.async_accept([state](const std::error_code& error, asio::ip::tcp::socket socket) {
    if (state->stopped.load()) return;
    if (error) {
      RetryLater(state, error, AcceptNext);
      return;
    }
    std::string peer = RemoteAddress(socket);
    Accepted(state, Connection::Socket(std::move(socket)), std::move(peer));
    AcceptNext(state);
  });
}

void Listener::AcceptLocal(const std::shared_ptr<State>& state) {
  if (state->stopped.load()) return;
  state->local.async_accept(
      [state](const std::error_code& error, asio::local::stream_protocol::socket socket) {
        if (state->stopped.load()) return;
        if (error) {
          RetryLater(state, error, AcceptLocal);
          return;
        }
        std::string peer = "a process on this host";
        ucred credentials{};
        if (PeerCredentials(socket.native_handle(), &credentials)) {
          peer = absl::StrCat("pid ", credentials.pid, " on this host");
        }
        Accepted(state, Connection::Socket(std::move(socket)), std::move(peer));
        AcceptLocal(state);
      });
}

void Listener::RetryLater(const std::shared_ptr<State>& state, const std::error_code& error,
                          void (*accept)(const std::shared_ptr<State>&)) {
  // Transient (ENOBUFS, ENOMEM, EMFILE, ENFILE, EPROTO, ECONNABORTED ...): pause, go on.
  LUMEN_LOG(WARNING) << "accept failed: " << error.message() << "; retrying";
  auto timer = std::make_shared<asio::steady_timer>(state->io.context());
  timer->expires_after(std::chrono::milliseconds(50));
  timer->async_wait([state, timer, accept](const std::error_code& e) {
    if (!e && !state->stopped.load()) accept(state);
  });
}

void Listener::Accepted(const std::shared_ptr<State>& state, Connection::Socket socket,
                        std::string peer) {
  if (state->unauthenticated->load() >= state->max_unauthenticated) {
    if (state->refused++ % 100 == 0) {
      LUMEN_LOG(WARNING) << "refusing a connection: " << state->max_unauthenticated
                         << " connections have not sent their hello yet (" << state->refused
                         << " refused so far)";
    }
    std::error_code ignored;
    socket.close(ignored);
    return;
  }
  state->unauthenticated->fetch_add(1);
  auto conn = std::make_shared<Connection>(state->io, std::move(socket), std::move(peer),
                                           state->options, /*authenticated=*/false);
  std::weak_ptr<State> weak = state;
  conn->StartServer(
      [weak](Connection& c, const proto::Hello& hello) {
        auto s = weak.lock();
        if (s == nullptr || s->stopped.load() || !ConstantTimeEquals(hello.token(), s->token)) {
          return Connection::Handlers();
        }
        return s->on_accept(c.shared_from_this(), hello);
      },
      state->unauthenticated);
}

absl::StatusOr<int> PickFreePort(const std::string& ip) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  socklen_t len = sizeof(addr);
  if (fd < 0 || inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat("cannot bind ", ip, ": ", reason));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace lumen::net
