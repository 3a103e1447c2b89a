// Accepts fast-path connections on host:port, and on the same-host Unix socket named after it
// (connection.h, LocalName), and hands each to the application once its peer sent a hello with
// the cluster token.
//
//   auto listener = Listener::Start(io, "127.0.0.1", 0, token,
//   ConnectionOptions::FromEnvironment(),
//       [](const std::shared_ptr<Connection>& conn, const proto::Hello& hello) {
//         return Connection::Handlers{.on_frame = ..., .on_close = ...};
//       });
//   int port = (*listener)->port();
//
// Before its hello a connection may send only max_hello_bytes within hello_timeout, and at most
// max_unauthenticated such connections exist at once (more are closed on accept). Tokens are
// compared in constant time. Accept errors (ENOBUFS, ENOMEM, EMFILE, EPROTO ...) are logged and
// retried after a short pause; the listener never stops on its own.
//
// Thread-safe. Stop() stops accepting; accepted connections are their handlers' business.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "net/connection.h"
#include "net/io_pool.h"

namespace lumen::net {

class Listener {
 public:
  using AcceptHandler =
      std::function<Connection::Handlers(const std::shared_ptr<Connection>&, const proto::Hello&)>;
  static constexpr int kDefaultMaxUnauthenticated = 64;

  // Listens on host:port (port 0: any free port). UNAVAILABLE naming the address if it cannot.
  static absl::StatusOr<std::unique_ptr<Listener>> Start(
      IoPool& io, const std::string& host, int port, std::string token, ConnectionOptions options,
      AcceptHandler on_accept, int max_unauthenticated = kDefaultMaxUnauthenticated);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int port() const { return port_; }
  // Connections accepted that have not yet sent a valid hello.
  int unauthenticated() const { return unauthenticated_->load(); }
  void Stop();

 private:
  struct State;
  Listener(std::shared_ptr<State> state, int port);
  static void AcceptNext(const std::shared_ptr<State>& state);
  // The same-host Unix socket's accept loop (connection.h, LocalName).
  static void AcceptLocal(const std::shared_ptr<State>& state);
  static void RetryLater(const std::shared_ptr<State>& state, const std::error_code& error,
                         void (*accept)(const std::shared_ptr<State>&));
  // A new connection: closed at once if too many are unauthenticated, else waits for its hello.
  static void Accepted(const std::shared_ptr<State>& state, Connection::Socket socket,
                       std::string peer);

  std::shared_ptr<State> state_;
  std::shared_ptr<std::atomic<int>> unauthenticated_;
  const int port_;
};

// A TCP port on `ip` that is free now (the kernel's pick; another process may take it before it
// is used). UNAVAILABLE naming the address if nothing can be bound there.
absl::StatusOr<int> PickFreePort(const std::string& ip);

}  // namespace lumen::net
