#include "net/connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/bind_executor.hpp>
#include <asio/connect.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::net {
namespace {

using Clock = std::chrono::steady_clock;

// Reads ask for at least this much free space once authenticated.
constexpr size_t kReadChunk = size_t{64} << 10;
// A buffer that grew past this for one large frame shrinks back once it is empty.
constexpr size_t kKeepBuffer = size_t{1} << 20;
// Outbound buffers up to this size are kept for reuse once written.
constexpr size_t kMaxRecycledBuffer = size_t{64} << 20;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

int64_t EnvMillis(const char* name, int64_t fallback) {
  const char* env = std::getenv(name);
  int64_t value = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &value) && value > 0) return value;
  return fallback;
}

void SetTcpOptions(int fd, const ConnectionOptions& options) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  const int idle = std::max<int>(1, static_cast<int>(absl::ToInt64Seconds(options.ping_interval)));
  const int interval = 1;
  const int count = std::max<int>(
      1, static_cast<int>(absl::ToInt64Seconds(options.peer_timeout - options.ping_interval)));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  // Data the peer does not acknowledge for this long fails the connection (a cut link).
  const auto user_timeout =
      static_cast<unsigned int>(absl::ToInt64Milliseconds(options.peer_timeout));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

bool IsUnixSocket(int fd) {
  int domain = 0;
  socklen_t size = sizeof(domain);
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0 && domain == AF_UNIX;
}

// Whether the process at the other end of a Unix socket runs as this process's user. Anyone
// on the host can listen on any free abstract name, so a client checks before it sends the
// cluster token there; a process of the same user could read the token from the session folder
// anyway.
bool OwnUser(int fd, const std::string& address) {
  ucred credentials{};
  if (!PeerCredentials(fd, &credentials)) return false;
  if (credentials.uid == geteuid()) return true;
  LUMEN_LOG(WARNING) << "the same-host socket for " << address << " belongs to pid "
                     << credentials.pid << " of user " << credentials.uid
                     << ", not to this user: connecting over TCP";
  return false;
}

// In a length prefix: a 64-bit payload length follows the prefix, and its bytes the frame.
constexpr uint32_t kPayloadFlag = uint32_t{1} << 31;

// The prefix, [the payload length], the frame: what goes before a payload of `payload_size`
// bytes (with_payload) or alone. Lengths are little-endian, as is every host Lumen runs on.
void AppendHeader(std::string* out, const proto::Frame& frame, bool with_payload,
                  size_t payload_size, size_t reserve_extra) {
  const size_t size = frame.ByteSizeLong();
  const size_t header = with_payload ? 12 : 4;
  const size_t old = out->size();
  out->reserve(old + header + size + reserve_extra);
  out->resize(old + header + size);
  char* at = out->data() + old;
  const auto le = static_cast<uint32_t>(size) | (with_payload ? kPayloadFlag : 0);
  std::memcpy(at, &le, 4);
  if (with_payload) {
    const auto payload_le = static_cast<uint64_t>(payload_size);
    std::memcpy(at + 4, &payload_le, 8);
  }
  frame.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(at + header));
}

// The header, then [the payload].
void AppendFrame(std::string* out, const proto::Frame& frame, const char* payload = nullptr,
                 size_t payload_size = 0) {
  const bool with_payload = payload != nullptr;
  AppendHeader(out, frame, with_payload, payload_size, payload_size);
  // Appended, not resized then copied: the payload's bytes are written once.
  if (with_payload) out->append(payload, payload_size);
}

}  // namespace

// The bytes read and not yet handled: [begin, end) of an uninitialized heap block.
class Connection::ReadBuffer {
 public:
  char* data() { return data_.get(); }
  size_t begin = 0;
  size_t end = 0;
  size_t capacity() const { return capacity_; }
  size_t used() const { return end - begin; }

  // Makes room for `free` more bytes after `end`, moving unread bytes to the front.
  void Reserve(size_t free) {
    if (capacity_ - end >= free) return;
    if (begin > 0) {
      std::memmove(data_.get(), data_.get() + begin, used());
      end -= begin;
      begin = 0;
      if (capacity_ - end >= free) return;
    }
    const size_t wanted = std::max(end + free, capacity_ * 2);
    std::unique_ptr<char[]> bigger(new char[wanted]);
    if (end > 0) std::memcpy(bigger.get(), data_.get(), end);
    data_ = std::move(bigger);
    capacity_ = wanted;
  }
  void ShrinkIfEmpty() {
    if (begin != end) return;
    begin = end = 0;
    if (capacity_ > kKeepBuffer) {
      data_.reset(new char[kReadChunk]);
      capacity_ = kReadChunk;
    }
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

ConnectionOptions ConnectionOptions::FromEnvironment() {
  ConnectionOptions options;
  options.peer_timeout = absl::Milliseconds(EnvMillis("LUMEN_PEER_TIMEOUT_MS", 10000));
  options.ping_interval = absl::Milliseconds(EnvMillis("LUMEN_PING_INTERVAL_MS", 1000));
  if (options.ping_interval * 2 > options.peer_timeout) {
    options.ping_interval = options.peer_timeout / 4;
  }
  return options;
}

std::string RemoteAddress(const asio::ip::tcp::socket& socket) {
  std::error_code error;
  auto endpoint = socket.remote_endpoint(error);
  if (error) return "?";
  return absl::StrCat(endpoint.address().to_string(), ":", endpoint.port());
}

bool PeerCredentials(int fd, ucred* credentials) {
  socklen_t size = sizeof(*credentials);
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, credentials, &size) == 0;
}

std::string LocalName(const std::string& host, int port) {
  return absl::StrCat(absl::string_view("\0", 1), "lumen-fast-path/", host, ":", port);
}

bool LocalTransportEnabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("LUMEN_LOCAL_TRANSPORT");
    return env == nullptr || std::string_view(env) != "0";
  }();
  return enabled;
}

absl::Status ParseHostPort(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  int value = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &value) || value <= 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not an address of the form host:port"));
  }
  *host = address.substr(0, colon);
  *port = value;
  return absl::OkStatus();
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

proto::Frame MakeHello(const std::string& token, const std::string& address, uint64_t client_id) {
  proto::Frame frame;
  frame.mutable_hello()->set_token(token);
  frame.mutable_hello()->set_address(address);
  frame.mutable_hello()->set_client_id(client_id);
  return frame;
}

// ---- Connecting ------------------------------------------------------------------------

void Connection::AsyncConnect(IoPool& io, const std::string& address, absl::Duration timeout,
                              const ConnectionOptions& options, ConnectCallback done) {
  std::string host;
  int port = 0;
  if (auto status = ParseHostPort(address, &host, &port); !status.ok()) {
    asio::post(io.context(), [done = std::move(done), status] { done(status); });
    return;
  }
  std::error_code parse_error;
  asio::ip::address ip =
      asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, parse_error);
  if (parse_error) {
    // A host name: resolve it here (Lumen advertises numeric addresses, so this is rare).
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 || result == nullptr) {
      auto status = absl::UnavailableError(absl::StrCat("cannot resolve host '", host, "'"));
      asio::post(io.context(), [done = std::move(done), status] { done(status); });
      return;
    }
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr, text,
              sizeof(text));
    freeaddrinfo(result);
    ip = asio::ip::make_address(text, parse_error);
  }
  struct Attempt {
    Attempt(IoPool& pool, ConnectCallback callback)
        : local(pool.context()),
          socket(pool.context()),
          timer(pool.context()),
          done(std::move(callback)) {}
    asio::local::stream_protocol::socket local;
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    ConnectCallback done;
    bool finished = false;
    bool timed_out = false;
  };
  auto attempt = std::make_shared<Attempt>(io, std::move(done));
  auto strand = asio::make_strand(io.context());
  const asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  auto fail = [attempt, address, timeout](const std::error_code& error) {
    attempt->finished = true;
    attempt->timer.cancel();
    const std::string reason = attempt->timed_out
                                   ? absl::StrCat("timed out after ", absl::FormatDuration(timeout))
                                   : error.message();
    attempt->done(
        absl::UnavailableError(absl::StrCat("cannot connect to ", address, ": ", reason)));
  };
  auto succeed = [&io, attempt, options](Socket socket, std::string peer) {
    attempt->finished = true;
    attempt->timer.cancel();
    attempt->done(std::make_shared<Connection>(io, std::move(socket), std::move(peer), options,
                                               /*authenticated=*/true));
  };
  // TCP, once the Unix socket was not there (or not tried).
  auto connect_tcp = [attempt, strand, fail, succeed, endpoint] {
    attempt->socket.async_connect(
        endpoint,
        asio::bind_executor(strand, [attempt, fail, succeed](const std::error_code& error) {
          if (error || attempt->timed_out) {
            fail(error);
            return;
          }
          std::string peer = RemoteAddress(attempt->socket);
          succeed(Socket(std::move(attempt->socket)), std::move(peer));
        }));
  };
  const bool try_local = LocalTransportEnabled() && !ip.is_unspecified();
  asio::post(strand, [attempt, strand, address, timeout, fail, succeed, connect_tcp, try_local,
                      local = LocalName(ip.to_string(), port)] {
    attempt->timer.expires_after(ToChrono(timeout));
    attempt->timer.async_wait(asio::bind_executor(strand, [attempt](const std::error_code& e) {
      if (e || attempt->finished) return;
      attempt->timed_out = true;
      std::error_code ignored;
      attempt->local.close(ignored);
      attempt->socket.close(ignored);
    }));
    if (!try_local) {
      connect_tcp();
      return;
    }
    attempt->local.async_connect(
        asio::local::stream_protocol::endpoint(local),
        asio::bind_executor(
            strand, [attempt, address, fail, succeed, connect_tcp](const std::error_code& error) {
              if (attempt->timed_out) {
                fail(error);
              } else if (error || !OwnUser(attempt->local.native_handle(), address)) {
                // No listener of that name here (the peer is on another host), or not ours.
                std::error_code ignored;
                attempt->local.close(ignored);
                connect_tcp();
              } else {
                succeed(Socket(std::move(attempt->local)), address);
              }
            }));
  });
}

absl::StatusOr<std::shared_ptr<Connection>> Connection::Connect(IoPool& io,
                                                                const std::string& address,
                                                                absl::Duration timeout,
                                                                const ConnectionOptions& options) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<std::shared_ptr<Connection>>>>();
  auto future = promise->get_future();
  AsyncConnect(io, address, timeout, options,
               [promise](absl::StatusOr<std::shared_ptr<Connection>> result) {
                 promise->set_value(std::move(result));
               });
  return future.get();
}

// ---- Lifetime --------------------------------------------------------------------------

Connection::Connection(IoPool& io, Socket socket, std::string peer,
                       const ConnectionOptions& options, bool authenticated)
    : strand_(asio::make_strand(io.context())),
      socket_(std::move(socket)),
      fd_(socket_.native_handle()),
      local_(IsUnixSocket(fd_)),
      options_(options),
      peer_(std::move(peer)),
      authenticated_(authenticated),
      buffer_(std::make_unique<ReadBuffer>()),
      liveness_timer_(io.context()),
      hello_timer_(io.context()) {
  if (!local_) SetTcpOptions(fd_, options_);
  last_receive_ = last_ping_ = Clock::now();
}

Connection::~Connection() {
  std::error_code ignored;
  socket_.close(ignored);
}

void Connection::Start(Handlers handlers) {
  asio::post(strand_, [self = shared_from_this(), handlers = std::move(handlers)]() mutable {
    self->handlers_ = std::move(handlers);
    self->StartOnStrand();
  });
}

void Connection::StartServer(HelloHandler on_hello,
                             std::shared_ptr<std::atomic<int>> unauthenticated) {
  asio::post(strand_, [self = shared_from_this(), on_hello = std::move(on_hello),
                       unauthenticated = std::move(unauthenticated)]() mutable {
    self->on_hello_ = std::move(on_hello);
    self->unauthenticated_ = std::move(unauthenticated);
    if (!self->authenticated_) {
      self->hello_timer_.expires_after(ToChrono(self->options_.hello_timeout));
      self->hello_timer_.async_wait(
          asio::bind_executor(self->strand_, [self](const std::error_code& error) {
            if (error || self->authenticated_ || self->closed()) return;
            LUMEN_LOG(WARNING) << "closing connection from " << self->peer_ << ": no hello within "
                               << absl::FormatDuration(self->options_.hello_timeout);
            self->Close("no hello within the deadline");
          }));
    }
    self->StartOnStrand();
  });
}

void Connection::StartOnStrand() {
  if (closed()) {
    FinishClose();
    return;
  }
  last_receive_ = last_ping_ = Clock::now();
  ArmLiveness();
  DoRead();
}

void Connection::LeaveUnauthenticated() {
  if (unauthenticated_ != nullptr) {
    unauthenticated_->fetch_sub(1);
    unauthenticated_.reset();
  }
}

void Connection::Close(const std::string& reason) {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  {
    absl::MutexLock lock(&mu_);
    if (!write_failed_.load(std::memory_order_acquire)) close_reason_ = reason;
    written_.SignalAll();
  }
  // Wakes the pending read at once; the descriptor itself is closed by the destructor, so a
  // thread still writing to it never hits a reused descriptor number.
  ::shutdown(fd_, SHUT_RDWR);
  asio::post(strand_, [self = shared_from_this()] { self->FinishClose(); });
}

void Connection::WriteFailed(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    written_.SignalAll();
    if (closed() || write_failed_.exchange(true, std::memory_order_acq_rel)) return;
    close_reason_ = reason;
  }
  // The peer learns that nothing more comes; reading goes on until it ends.
  ::shutdown(fd_, SHUT_WR);
}

void Connection::FinishClose() {
  if (close_finished_) return;
  close_finished_ = true;
  liveness_timer_.cancel();
  hello_timer_.cancel();
  LeaveUnauthenticated();
  std::string reason;
  std::deque<BorrowedWrite> borrowed;  // their keep-alives go once the lock is released
  {
    absl::MutexLock lock(&mu_);
    reason = close_reason_;
    pending_.clear();
    pending_.shrink_to_fit();
    borrowed.swap(borrowed_);
    borrowed_bytes_ = 0;
  }
  Handlers handlers = std::move(handlers_);
  handlers_ = Handlers();
  payload_sink_ = nullptr;
  on_hello_ = nullptr;
  if (handlers.on_close) handlers.on_close(*this, reason);
}

// ---- Reading ---------------------------------------------------------------------------

void Connection::DoRead() {
  if (reading_ || closed() || read_paused_.load(std::memory_order_acquire)) return;
  if (payload_left_ > 0 && payload_dest_ != nullptr) {
    ReadPayload();
    return;
  }
  size_t want = kReadChunk;
  if (!authenticated_) {
    // Before the hello, only as much as a hello may take.
    want = options_.max_hello_bytes + 4 - std::min(buffer_->used(), options_.max_hello_bytes + 4);
    if (want == 0) want = 1;
  } else if (payload_left_ == 0 && buffer_->used() >= 4) {
    // Part of a large frame: grow with what has arrived, at most doubling.
    uint32_t size = 0;
    std::memcpy(&size, buffer_->data() + buffer_->begin, 4);
    size &= ~kPayloadFlag;
    const size_t missing = 4 + static_cast<size_t>(size) - buffer_->used();
    want = std::clamp(missing, kReadChunk, std::max(kReadChunk, buffer_->used()));
  }
  buffer_->Reserve(want);
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(buffer_->data() + buffer_->end, want),
      asio::bind_executor(strand_,
                          [self = shared_from_this()](const std::error_code& error, size_t bytes) {
                            self->OnRead(error, bytes);
                          }));
}

void Connection::ReadPayload() {
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(payload_dest_ + (payload_size_ - payload_left_), payload_left_),
      asio::bind_executor(
          strand_, [self = shared_from_this()](const std::error_code& error, size_t bytes) {
            self->reading_ = false;
            if (self->closed()) {
              self->FinishClose();
              return;
            }
            if (error) {
              self->Close(error == asio::error::eof ? "the peer closed the connection"
                                                    : error.message());
              return;
            }
            self->last_receive_ = Clock::now();
            self->payload_left_ -= bytes;
            if (self->payload_left_ == 0) {
              if (!self->FinishPayload()) return;
              if (self->handlers_.on_batch_end) self->handlers_.on_batch_end(*self);
            }
            self->DoRead();
          }));
}

bool Connection::FinishPayload() {
  const bool wanted = payload_dest_ != nullptr;
  payload_dest_ = nullptr;
  payload_size_ = 0;
  if (!wanted || !handlers_.on_frame) return true;
  handlers_.on_frame(*this, frame_);
  if (closed()) {
    FinishClose();
    return false;
  }
  return true;
}

void Connection::OnRead(const std::error_code& error, size_t bytes) {
  reading_ = false;
  if (closed()) {
    FinishClose();
    return;
  }
  if (error) {
    Close(error == asio::error::eof ? "the peer closed the connection" : error.message());
    return;
  }
  last_receive_ = Clock::now();
  buffer_->end += bytes;
  if (!HandleFrames()) return;
  if (handlers_.on_batch_end) handlers_.on_batch_end(*this);
  buffer_->ShrinkIfEmpty();
  DoRead();
}

bool Connection::HandleFrames() {
  ReadBuffer& buffer = *buffer_;
  while (true) {
    if (payload_left_ > 0) {
      // The payload's bytes that came with the frame's read.
      const size_t take = std::min(buffer.used(), payload_left_);
      if (payload_dest_ != nullptr) {
        std::memcpy(payload_dest_ + (payload_size_ - payload_left_), buffer.data() + buffer.begin,
                    take);
      }
      buffer.begin += take;
      payload_left_ -= take;
      if (payload_left_ > 0) return true;
      if (!FinishPayload()) return false;
      continue;
    }
    if (buffer.used() < 4) return true;
    uint32_t prefix = 0;
    std::memcpy(&prefix, buffer.data() + buffer.begin, 4);
    const uint32_t size = prefix & ~kPayloadFlag;
    const bool with_payload = (prefix & kPayloadFlag) != 0;
    const size_t header = with_payload ? 12 : 4;
    const size_t limit = authenticated_ ? options_.max_frame_bytes : options_.max_hello_bytes;
    if (size > limit || (with_payload && !authenticated_)) {
      LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": a frame of " << size
                         << " bytes" << (with_payload ? " with a payload" : "")
                         << " exceeds the limit of " << limit << " bytes"
                         << (authenticated_ ? "" : " before the hello");
      Close("oversized frame");
      return false;
    }
    if (buffer.used() < header + static_cast<size_t>(size)) return true;
    uint64_t payload = 0;
    if (with_payload) {
      std::memcpy(&payload, buffer.data() + buffer.begin + 4, 8);
      if (!payload_sink_ || payload > options_.max_frame_bytes) {
        LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": a payload of " << payload
                           << " bytes, "
                           << (payload_sink_
                                   ? absl::StrCat("over the limit of ", options_.max_frame_bytes)
                                   : std::string("which this connection does not take"));
        Close("unexpected or oversized payload");
        return false;
      }
    }
    frame_.Clear();
    const bool parsed =
        frame_.ParseFromArray(buffer.data() + buffer.begin + header, static_cast<int>(size));
    buffer.begin += header + size;
    if (!parsed) {
      LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": a frame of " << size
                         << " bytes does not parse";
      Close("malformed frame");
      return false;
    }
    if (!authenticated_) {
      if (!OnHello(frame_)) return false;
      continue;
    }
    if (frame_.has_ping()) {
      SendControl(/*ping=*/false);
      continue;
    }
    if (frame_.has_pong()) continue;
    current_frame_bytes_ = header + size + payload;
    current_payload_bytes_ = payload;
    if (with_payload) {
      payload_size_ = payload_left_ = payload;
      payload_dest_ = payload_sink_(*this, frame_, payload);
      if (closed()) {
        FinishClose();
        return false;
      }
      if (payload_left_ == 0 && !FinishPayload()) return false;
      continue;
    }
    if (handlers_.on_frame) handlers_.on_frame(*this, frame_);
    if (closed()) {
      FinishClose();
      return false;
    }
  }
  return true;
}

bool Connection::OnHello(proto::Frame& frame) {
  if (!frame.has_hello()) {
    LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": the first frame is not a hello";
    Close("no hello");
    return false;
  }
  Handlers handlers;
  if (on_hello_) handlers = on_hello_(*this, frame.hello());
  if (!handlers.on_frame) {
    LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": missing or wrong cluster token";
    Close("rejected hello");
    return false;
  }
  authenticated_ = true;
  hello_timer_.cancel();
  LeaveUnauthenticated();
  handlers_ = std::move(handlers);
  return true;
}

void Connection::PauseReading() { read_paused_.store(true, std::memory_order_release); }

void Connection::ResumeReading() {
  if (!read_paused_.exchange(false, std::memory_order_acq_rel)) return;
  asio::post(strand_, [self = shared_from_this()] {
    self->last_receive_ = Clock::now();  // silence while paused was ours
    self->DoRead();
  });
}

// ---- Liveness --------------------------------------------------------------------------

void Connection::ArmLiveness() {
  liveness_timer_.expires_after(ToChrono(std::min(options_.ping_interval, absl::Seconds(1))));
  liveness_timer_.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this()](const std::error_code& error) {
        if (!error) self->OnLivenessTick();
      }));
}

void Connection::OnLivenessTick() {
  if (closed()) return;
  const auto now = Clock::now();
  if (write_failed_.load(std::memory_order_acquire)) {
    // Reading normally ends at once with the dead peer's end of stream; a peer that still
    // sends but cannot be written to is given the peer timeout.
    if (write_failed_seen_ == Clock::time_point()) write_failed_seen_ = now;
    if (now - write_failed_seen_ >= ToChrono(options_.peer_timeout)) {
      Close("write failed");  // keeps the write's reason
      return;
    }
  }
  if (read_paused_.load(std::memory_order_acquire)) {
    last_receive_ = now;  // we are not reading: the peer's silence is not the peer's
  } else if (now - last_receive_ >= ToChrono(options_.peer_timeout)) {
    LUMEN_LOG(WARNING) << "closing connection to " << peer_ << ": nothing received for "
                       << absl::FormatDuration(options_.peer_timeout);
    Close(absl::StrCat("the peer ", peer_, " sent nothing for ",
                       absl::FormatDuration(options_.peer_timeout),
                       " (process stopped or host unreachable)"));
    return;
  }
  if (authenticated_ && now - last_receive_ >= ToChrono(options_.ping_interval) &&
      now - last_ping_ >= ToChrono(options_.ping_interval)) {
    last_ping_ = now;
    SendControl(/*ping=*/true);
  }
  ArmLiveness();
}

void Connection::SendControl(bool ping) {
  proto::Frame frame;
  if (ping) {
    frame.mutable_ping();
  } else {
    frame.mutable_pong();
  }
  Send(frame, /*flush=*/true);
}

// ---- Writing ---------------------------------------------------------------------------

bool Connection::Send(const proto::Frame& frame, bool flush) {
  return SendWithPayload(frame, nullptr, 0, flush);
}

bool Connection::SendWithPayload(const proto::Frame& frame, const char* payload, size_t size,
                                 bool flush) {
  if (sending_stopped()) return false;
  // A large payload would rarely leave in one send; queued, it reuses the queue's buffers.
  if (flush && size <= kKeepBuffer && TrySendAlone(frame, payload, size)) return true;
  size_t queued = 0;
  {
    absl::MutexLock lock(&mu_);
    AppendFrame(&pending_, frame, payload, size);
    queued = pending_.size() + async_out_.size() + borrowed_bytes_;
  }
  return Queued(queued, flush);
}

bool Connection::Queued(size_t queued, bool flush) {
  if (queued > options_.max_outbound_bytes) {
    LUMEN_LOG(WARNING) << "closing connection to " << peer_ << ": " << queued
                       << " bytes queued that the peer does not read";
    Close("the peer does not read");
    return false;
  }
  if (flush) Flush();
  return true;
}

bool Connection::TrySendAlone(const proto::Frame& frame, const char* payload, size_t payload_size) {
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || !pending_.empty() || !borrowed_.empty()) return false;
    writing_ = true;
  }
  // Nothing else queued and nobody writing: serialize into this thread's buffer and write.
  thread_local std::string out;
  out.clear();
  AppendFrame(&out, frame, payload, payload_size);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::send(fd_, out.data() + done, out.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  std::string rest;
  if (done < out.size()) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      WriteFailed(absl::StrCat("write failed: ", std::strerror(errno)));
      return true;
    }
    rest = out.substr(done);
  }
  {
    absl::MutexLock lock(&mu_);
    if (rest.empty() && pending_.empty() && borrowed_.empty()) {
      writing_ = false;
      written_.SignalAll();
      return true;
    }
    // What the socket did not take, and what others queued meanwhile, go in order (borrowed
    // payloads queued meanwhile hold what was queued before them; they follow `rest`).
    if (borrowed_.empty()) {
      rest.append(pending_);
      pending_.clear();
    }
  }
  asio::post(strand_, [self = shared_from_this(), rest = std::move(rest)]() mutable {
    self->WriteAsync(std::move(rest), 0);
  });
  return true;
}

void Connection::Flush() {
  std::string out;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || (pending_.empty() && borrowed_.empty()) || sending_stopped()) return;
    writing_ = true;
    if (!borrowed_.empty()) {
      asio::post(strand_, [self = shared_from_this()] { self->WriteNext(); });
      return;
    }
    out.swap(pending_);
    pending_.swap(spare_);
  }
  // Writes from this thread while the kernel takes the bytes; a few rounds at most, so that
  // a thread that keeps queueing never keeps this one writing.
  for (int round = 0; round < 4; ++round) {
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n =
          ::send(fd_, out.data() + done, out.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      WriteFailed(absl::StrCat("write failed: ", n < 0 ? std::strerror(errno) : "send returned 0"));
      return;
    }
    if (done < out.size()) {
      asio::post(strand_, [self = shared_from_this(), rest = std::move(out), done]() mutable {
        self->WriteAsync(std::move(rest), done);
      });
      return;
    }
    absl::MutexLock lock(&mu_);
    out.clear();
    if ((pending_.empty() && borrowed_.empty()) || sending_stopped()) {
      if (spare_.capacity() < out.capacity()) spare_.swap(out);
      writing_ = false;
      written_.SignalAll();
      return;
    }
    if (!borrowed_.empty()) {
      asio::post(strand_, [self = shared_from_this()] { self->WriteNext(); });
      return;
    }
    out.swap(pending_);
  }
  asio::post(strand_, [self = shared_from_this(), rest = std::move(out)]() mutable {
    self->WriteAsync(std::move(rest), 0);
  });
}

void Connection::WriteAsync(std::string bytes, size_t offset) {
  if (sending_stopped()) {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    written_.SignalAll();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    async_out_.swap(bytes);
    // The buffer of the previous write goes back to the queue, so that large frames do not
    // allocate (and fault in) a fresh buffer each.
    if (bytes.capacity() > spare_.capacity() && bytes.capacity() <= kMaxRecycledBuffer) {
      bytes.clear();
      spare_.swap(bytes);
    }
  }
  asio::async_write(socket_, asio::buffer(async_out_.data() + offset, async_out_.size() - offset),
                    asio::bind_executor(
                        strand_, [self = shared_from_this()](const std::error_code& error, size_t) {
                          self->OnWritten(error);
                        }));
}

void Connection::OnWritten(const std::error_code& error) {
  if (error) {
    {
      absl::MutexLock lock(&mu_);
      async_out_.clear();
    }
    WriteFailed(absl::StrCat("write failed: ", error.message()));
    return;
  }
  WriteNext();
}

void Connection::WriteNext() {
  std::string next;
  bool borrowed = false;
  {
    absl::MutexLock lock(&mu_);
    async_out_.clear();
    if ((pending_.empty() && borrowed_.empty()) || sending_stopped()) {
      writing_ = false;
      written_.SignalAll();
      return;
    }
    borrowed = !borrowed_.empty();
    if (borrowed) {
      borrowed_out_ = std::move(borrowed_.front());
      borrowed_.pop_front();
      borrowed_bytes_ -= borrowed_out_.head.size() + borrowed_out_.payload.size;
    } else {
      next.swap(pending_);
      pending_.swap(spare_);  // queue into a buffer that has room already
    }
  }
  if (borrowed) {
    WriteBorrowed();
  } else {
    WriteAsync(std::move(next), 0);
  }
}

void Connection::WriteBorrowed() {
  const std::array<asio::const_buffer, 2> buffers = {
      asio::buffer(borrowed_out_.head),
      asio::buffer(borrowed_out_.payload.data, borrowed_out_.payload.size)};
  asio::async_write(socket_, buffers,
                    asio::bind_executor(
                        strand_, [self = shared_from_this()](const std::error_code& error, size_t) {
                          // The kernel has the bytes (or never will): the payload may go.
                          self->borrowed_out_ = BorrowedWrite();
                          self->OnWritten(error);
                        }));
}

bool Connection::SendBorrowed(const proto::Frame& frame, BorrowedPayload payload, bool flush) {
  if (payload.size < kMinBorrowedBytes) {
    // Small: copied into the queue like any payload, and the borrowed bytes are free at once.
    return SendWithPayload(frame, payload.data != nullptr ? payload.data : "", payload.size, flush);
  }
  size_t queued = 0;
  {
    absl::MutexLock lock(&mu_);
    // Checked under mu_: FinishClose, which drops what is queued, takes it after closed_ is set.
    if (sending_stopped()) return false;
    BorrowedWrite write;
    write.head.swap(pending_);  // what was queued before goes first
    AppendHeader(&write.head, frame, /*with_payload=*/true, payload.size, /*reserve_extra=*/0);
    write.payload = std::move(payload);
    borrowed_bytes_ += write.head.size() + write.payload.size;
    borrowed_.push_back(std::move(write));
    queued = pending_.size() + async_out_.size() + borrowed_bytes_;
  }
  return Queued(queued, flush);
}

bool Connection::FlushAndWait(absl::Duration timeout) {
  Flush();
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (writing_ || !pending_.empty() || !borrowed_.empty()) {
    if (sending_stopped()) return false;
    if (!writing_) {
      // Queued by another thread after our flush, and nobody writes it: write it ourselves.
      mu_.Unlock();
      Flush();
      mu_.Lock();
      continue;
    }
    if (written_.WaitWithDeadline(&mu_, deadline)) return false;
  }
  return !sending_stopped();
}

size_t Connection::outbound_bytes() const {
  absl::MutexLock lock(&mu_);
  return pending_.size() + borrowed_bytes_;
}

}  // namespace lumen::net
