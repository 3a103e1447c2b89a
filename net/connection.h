// One long-lived connection of the fast path: length-prefixed proto::Frame messages (a 4-byte
// little-endian length, then the frame), served by an IoPool. Over TCP, or over a Unix socket
// when the peer listens on the same host (see LocalName below): the frames are the same.
//
//   auto conn = Connection::Connect(io, "127.0.0.1:4242", absl::Seconds(5));
//   (*conn)->Start({.on_frame = ..., .on_close = ...});
//   (*conn)->Send(MakeHello(token, self_address));   // the first frame a server accepts
//   (*conn)->Send(frame, /*flush=*/false); ... (*conn)->Flush();   // many frames, one write
//
// Payloads: SendWithPayload puts raw bytes after a frame (the length prefix's top bit says so,
// and a 64-bit payload length follows it), so that bulk data such as object chunks is copied
// once into the outbound queue instead of through a proto field. The receiver's payload_sink
// names where the bytes go (e.g. straight into the object store); the socket is then read into
// that memory, and on_frame runs once the whole payload has arrived. SendBorrowed sends a large
// payload without copying it at all: the connection writes it from the caller's memory (a
// gather write of the frame's header and the payload) and holds the payload's keep-alive until
// the kernel has the bytes (see borrowed_payload.h).
//
// Reading: frames are handled in arrival order on the connection's strand (an I/O thread);
// handlers must not block. The read buffer grows only as bytes arrive, never to a size a peer
// merely claims. A frame over the limit, bytes that do not parse, or a server-side connection
// whose first frame is not a valid hello within the deadline close this connection only, with
// one log line. PauseReading stops reading (TCP flow control then holds the peer back).
//
// Writing never blocks: Send appends to an outbound queue; Flush writes what is queued from the
// calling thread while the socket takes it, and hands the rest to the I/O thread, which
// coalesces everything queued meanwhile into its next write. A peer that does not read is
// closed once its queue passes ConnectionOptions::max_outbound_bytes.
//
// Liveness: TCP keepalive, and a ping after ping_interval without incoming bytes; a peer that
// sends nothing for peer_timeout is declared gone (the connection closes with that reason).
//
// Thread-safe. on_close runs once, on the strand, after the last on_frame.
#pragma once

#include <sys/socket.h>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "net/borrowed_payload.h"
#include "net/io_pool.h"
#include "proto/wire.pb.h"

namespace lumen::net {

struct ConnectionOptions {
  // Largest frame from an authenticated peer.
  size_t max_frame_bytes = size_t{64} << 20;
  // Server side: the hello must be the first frame, at most this large, within hello_timeout.
  size_t max_hello_bytes = 4096;
  absl::Duration hello_timeout = absl::Seconds(2);
  // Idle for ping_interval: ping. Nothing received for peer_timeout: the peer is gone.
  absl::Duration ping_interval = absl::Seconds(1);
  absl::Duration peer_timeout = absl::Seconds(10);
  // Bytes queued for a peer that does not read before the connection is closed.
  size_t max_outbound_bytes = size_t{1} << 30;

  // Defaults, with $LUMEN_PEER_TIMEOUT_MS and $LUMEN_PING_INTERVAL_MS applied.
  static ConnectionOptions FromEnvironment();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Handlers {
    std::function<void(Connection&, proto::Frame&)> on_frame;
    // After the frames of one read were handled: a good moment to flush what they queued.
    std::function<void(Connection&)> on_batch_end;
    std::function<void(Connection&, const std::string& reason)> on_close;
  };
  // A frame followed by `bytes` of payload: returns where they go (nullptr drops them, and
  // on_frame is then not called for it).
  using PayloadSink = std::function<char*(Connection&, const proto::Frame&, size_t bytes)>;
  // Server side: decides on a peer's hello. Returns the handlers for an accepted peer, or
  // handlers with no on_frame to reject it (the connection then closes).
  using HelloHandler = std::function<Handlers(Connection&, const proto::Hello&)>;
  using ConnectCallback = std::function<void(absl::StatusOr<std::shared_ptr<Connection>>)>;

  // A connected stream socket, TCP or Unix.
  using Socket = asio::generic::stream_protocol::socket;

  // Connects to host:port: over the Unix socket of LocalName(host, port) if a listener on this
  // host (and in this network namespace) has it, else over TCP. `done` runs once, on an I/O
  // thread. UNAVAILABLE naming the address on failure or timeout; INVALID_ARGUMENT for a
  // malformed address.
  static void AsyncConnect(IoPool& io, const std::string& address, absl::Duration timeout,
                           const ConnectionOptions& options, ConnectCallback done);
  // The same, waiting for the result. Not on an I/O thread.
  static absl::StatusOr<std::shared_ptr<Connection>> Connect(
      IoPool& io, const std::string& address, absl::Duration timeout,
      const ConnectionOptions& options = ConnectionOptions::FromEnvironment());

  // Takes a connected socket; `peer` names the other end in logs and reasons. A server-side
  // connection starts unauthenticated.
  Connection(IoPool& io, Socket socket, std::string peer, const ConnectionOptions& options,
             bool authenticated);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Client side (or an authenticated server side): starts reading. Call once.
  void Start(Handlers handlers);
  // Takes payloads (without a sink, a payload closes the connection). Call before Start, or
  // from the hello handler.
  void SetPayloadSink(PayloadSink sink) { payload_sink_ = std::move(sink); }
  // Server side: starts reading; the first frame must be a hello that `on_hello` accepts.
  // `unauthenticated` (optional) is decremented once the connection leaves that state.
  void StartServer(HelloHandler on_hello, std::shared_ptr<std::atomic<int>> unauthenticated);

  // Queues `frame`; with flush, writes what is queued now. False once closed.
  bool Send(const proto::Frame& frame, bool flush = true);
  // Queues `frame` followed by `size` raw bytes at `payload` (copied before this returns; at
  // most ConnectionOptions::max_frame_bytes). The peer needs a payload_sink.
  bool SendWithPayload(const proto::Frame& frame, const char* payload, size_t size,
                       bool flush = true);
  // Queues `frame` followed by the payload's bytes without copying them (a payload under
  // kMinBorrowedBytes is copied as SendWithPayload does). Frames queued before and after go
  // before and after it. The payload is written from the I/O thread; its keep_alive is dropped
  // once the kernel has the bytes or the connection closed. False (keep_alive dropped) once
  // closed.
  bool SendBorrowed(const proto::Frame& frame, BorrowedPayload payload, bool flush = true);
  static constexpr size_t kMinBorrowedBytes = size_t{64} << 10;
  // In on_frame: the size on the wire of the frame being handled, and of its payload.
  size_t current_frame_bytes() const { return current_frame_bytes_; }
  size_t current_payload_bytes() const { return current_payload_bytes_; }
  void Flush();
  // Flushes, then waits until everything queued so far was handed to the kernel, the
  // connection closed, or `timeout` passed. Not on an I/O thread. True if all was handed over.
  bool FlushAndWait(absl::Duration timeout);

  // Closes (idempotent). on_close gets `reason`.
  void Close(const std::string& reason = "closed locally");
  void PauseReading();
  void ResumeReading();

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Closed, or a write failed: sends are refused.
  bool sending_stopped() const { return closed() || write_failed_.load(std::memory_order_acquire); }
  // "ip:port" of the other end (over a Unix socket: the address connected to, or on the
  // server side the peer's pid).
  const std::string& peer() const { return peer_; }
  // Over a Unix socket (same host).
  bool local() const { return local_; }
  // Bytes queued and not yet handed to the kernel.
  size_t outbound_bytes() const;

  // Free for the owner of the connection.
  std::atomic<uint64_t> tag{0};

 private:
  class ReadBuffer;

  void StartOnStrand();
  void DoRead();
  void OnRead(const std::error_code& error, size_t bytes);
  // Handles every complete frame in the buffer; false if the connection closed.
  bool HandleFrames();
  bool OnHello(proto::Frame& frame);
  void ArmLiveness();
  void OnLivenessTick();
  void SendControl(bool ping);
  // Writes `frame` (and its payload) at once if nothing else is queued or being written;
  // false otherwise.
  bool TrySendAlone(const proto::Frame& frame, const char* payload, size_t payload_size);
  // Writes bytes[offset..] from the strand, then whatever was queued meanwhile.
  void WriteAsync(std::string bytes, size_t offset);
  // Reads the rest of a payload straight into its sink's memory.
  void ReadPayload();
  // The payload of frame_ is complete: hands the frame on. False if the connection closed.
  bool FinishPayload();
  void OnWritten(const std::error_code& error);
  // After queueing: closes the connection if `queued` bytes pass the limit, else flushes if
  // asked. False if closed.
  bool Queued(size_t queued, bool flush);
  // On the strand, while writing_: writes the next borrowed payload, else what is queued, else
  // ends the writing.
  void WriteNext();
  // Writes borrowed_out_ (its head, then its payload) from the strand.
  void WriteBorrowed();
  // A write failed: the peer is most likely gone, but what it sent before may still be
  // unread. Stops writing and leaves the close to the reading side, which ends with the
  // peer's end of stream (or after the peer timeout).
  void WriteFailed(const std::string& reason);
  void FinishClose();
  void LeaveUnauthenticated();

  // Set at construction.
  asio::strand<asio::io_context::executor_type> strand_;
  Socket socket_;
  const int fd_;
  const bool local_;
  const ConnectionOptions options_;
  const std::string peer_;

  // Only touched on the strand.
  Handlers handlers_;
  PayloadSink payload_sink_;
  HelloHandler on_hello_;
  std::shared_ptr<std::atomic<int>> unauthenticated_;
  bool authenticated_;
  bool reading_ = false;
  bool close_finished_ = false;
  std::unique_ptr<ReadBuffer> buffer_;
  proto::Frame frame_;
  size_t current_frame_bytes_ = 0;
  size_t current_payload_bytes_ = 0;
  // A payload being received after frame_: its size, what is still missing, and its sink's
  // memory (nullptr: dropped).
  size_t payload_size_ = 0;
  size_t payload_left_ = 0;
  char* payload_dest_ = nullptr;
  asio::steady_timer liveness_timer_;
  asio::steady_timer hello_timer_;
  std::chrono::steady_clock::time_point last_receive_;
  std::chrono::steady_clock::time_point last_ping_;

  std::atomic<bool> closed_{false};
  std::atomic<bool> write_failed_{false};
  // When the strand first saw write_failed_ (zero before).
  std::chrono::steady_clock::time_point write_failed_seen_{};
  std::atomic<bool> read_paused_{false};

  mutable absl::Mutex mu_;
  absl::CondVar written_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  std::string spare_ ABSL_GUARDED_BY(mu_);
  // Bytes the I/O thread is writing: assigned under mu_, read by the write in progress.
  std::string async_out_;
  // A thread (direct Flush) or the I/O thread (WriteAsync) is writing; the others only queue.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::string close_reason_ ABSL_GUARDED_BY(mu_);
  // Borrowed payloads queued, in order. Each head holds what was queued before it (pending_ is
  // moved into it), then its frame's header: pending_ always goes after every one of them.
  struct BorrowedWrite {
    std::string head;
    BorrowedPayload payload;
  };
  std::deque<BorrowedWrite> borrowed_ ABSL_GUARDED_BY(mu_);
  size_t borrowed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The borrowed write in progress: only touched on the strand while writing_.
  BorrowedWrite borrowed_out_;
};

// The hello a client sends first: the cluster token, and the sender's own fast-path address
// (naming it as a borrower), and for node-manager clients their client id.
proto::Frame MakeHello(const std::string& token, const std::string& address,
                       uint64_t client_id = 0);

// Compares secrets in time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// The same-host path. A listener on a numeric host:port also listens on a Unix socket of this
// name in the abstract namespace (a leading NUL: no file, gone with the listener, and private
// to the network namespace, so a host in another namespace never finds it), and a client
// connecting to host:port tries it first. It carries the same frames and the same hello with
// the cluster token; a Unix socket costs the kernel less per message than loopback TCP, and a
// reply written to it is the peer's to read even if the writer dies next. Off when
// $LUMEN_LOCAL_TRANSPORT is 0.
std::string LocalName(const std::string& host, int port);
bool LocalTransportEnabled();

// "ip:port" of a TCP socket's other end, or "?".
std::string RemoteAddress(const asio::ip::tcp::socket& socket);
// The pid, uid and gid of the process at the other end of a Unix socket; false if unknown.
bool PeerCredentials(int fd, ucred* credentials);

// Splits "host:port"; INVALID_ARGUMENT with the text if malformed.
absl::Status ParseHostPort(const std::string& address, std::string* host, int* port);

}  // namespace lumen::net
