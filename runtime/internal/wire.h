// Framed TCP connections for the fast path: task pushes, replies and owner queries travel as
// length-prefixed proto::Frame messages over long-lived connections, never through gRPC.
//
//   auto conn = Connection::Connect("127.0.0.1:4242", absl::Seconds(5));
//   (*conn)->Start({.on_frame = ..., .on_batch_end = ..., .on_close = ...});
//   (*conn)->Send(frame);                 // writes now, or joins the write in progress
//
// Each connection has one reader thread that calls the handlers, so handlers for one
// connection never run concurrently. Send and Flush are thread-safe; concurrent senders are
// coalesced into one write. Frames above kMaxFrameBytes, or bytes that do not parse, close
// the connection with a logged reason: they never abort the process.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Handlers {
    std::function<void(Connection&, proto::Frame&)> on_frame;
    // After the frames of one read were handled: a good moment to flush replies.
    std::function<void(Connection&)> on_batch_end;
    std::function<void(Connection&, const std::string& reason)> on_close;
  };

  // Connects to host:port with TCP_NODELAY. UNAVAILABLE with the address on failure.
  static absl::StatusOr<std::shared_ptr<Connection>> Connect(const std::string& address,
                                                             absl::Duration timeout);
  // Takes a connected socket.
  explicit Connection(int fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the reader thread. Call once.
  void Start(Handlers handlers);
  // Queues `frame`; with flush, writes it (and whatever else is queued) before returning
  // unless another thread is writing, which then writes it. False once closed.
  bool Send(const proto::Frame& frame, bool flush = true);
  void Flush();
  // Shuts the socket down; the reader thread then calls on_close once. Idempotent.
  void Close();
  // Waits for the reader thread to end (not from the reader thread itself).
  void Join();
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  const std::string& peer() const { return peer_; }

  // Free for the owner of the connection (e.g. "this peer sent a valid Hello").
  std::atomic<bool> authenticated{false};
  std::atomic<uint64_t> tag{0};

 private:
  void ReadLoop();
  void WriteAll(const std::string& bytes);

  const int fd_;
  std::string peer_;
  Handlers handlers_;
  std::thread reader_;
  std::atomic<bool> closed_{false};

  absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  std::string spare_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
};

// Accepts connections on host:port (port 0: any free port) on its own thread.
class WireServer {
 public:
  using AcceptHandler = std::function<void(std::shared_ptr<Connection>)>;
  static absl::StatusOr<std::unique_ptr<WireServer>> Start(const std::string& host, int port,
                                                           AcceptHandler on_accept);
  ~WireServer();
  int port() const { return port_; }
  void Stop();

 private:
  WireServer(int fd, int port, AcceptHandler on_accept);
  void AcceptLoop();

  const int fd_;
  const int port_;
  AcceptHandler on_accept_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Splits "host:port"; INVALID_ARGUMENT with the text if malformed.
absl::Status ParseHostPort(const std::string& address, std::string* host, int* port);

}  // namespace lumen::internal
