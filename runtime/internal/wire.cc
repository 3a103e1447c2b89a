#include "runtime/internal/wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::internal {
namespace {

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string PeerName(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
  return absl::StrCat(ip, ":", ntohs(addr.sin_port));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve host '", host, "'"));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr;
  freeaddrinfo(result);
  return addr;
}

}  // namespace

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

absl::StatusOr<std::shared_ptr<Connection>> Connection::Connect(const std::string& address,
                                                                absl::Duration timeout) {
  std::string host;
  int port = 0;
  if (auto status = ParseHostPort(address, &host, &port); !status.ok()) return status;
  auto addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd pfd{fd, POLLOUT, 0};
    rc = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int error = 0;
    socklen_t len = sizeof(error);
    if (rc == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (rc == 0) error = ETIMEDOUT;
    if (rc < 0) error = errno;
    errno = error;
    rc = error == 0 ? 0 : -1;
  }
  if (rc != 0) {
    const std::string reason = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", address, ": ", reason));
  }
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  SetNoDelay(fd);
  return std::make_shared<Connection>(fd);
}

Connection::Connection(int fd) : fd_(fd), peer_(PeerName(fd)) { SetNoDelay(fd); }

Connection::~Connection() {
  Close();
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) {
      reader_.detach();
    } else {
      reader_.join();
    }
  }
  close(fd_);
}

void Connection::Start(Handlers handlers) {
  handlers_ = std::move(handlers);
  reader_ = std::thread([self = shared_from_this()] { self->ReadLoop(); });
}

bool Connection::Send(const proto::Frame& frame, bool flush) {
  if (closed()) return false;
  const size_t size = frame.ByteSizeLong();
  {
    absl::MutexLock lock(&mu_);
    const size_t old = pending_.size();
    pending_.resize(old + 4 + size);
    char* out = pending_.data() + old;
    const auto le = static_cast<uint32_t>(size);
    std::memcpy(out, &le, 4);
    frame.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out + 4));
  }
  if (flush) Flush();
  return true;
}

void Connection::Flush() {
  std::string out;
  mu_.Lock();
  if (writing_ || pending_.empty()) {
    mu_.Unlock();
    return;
  }
  writing_ = true;
  while (!pending_.empty() && !closed()) {
    out.swap(pending_);
    pending_.swap(spare_);
    pending_.clear();
    mu_.Unlock();
    WriteAll(out);
    out.clear();
    mu_.Lock();
    if (spare_.capacity() < out.capacity()) spare_.swap(out);
  }
  writing_ = false;
  mu_.Unlock();
}

void Connection::WriteAll(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Close();
      return;
    }
    done += static_cast<size_t>(n);
  }
}

void Connection::Close() {
  bool expected = false;
  if (closed_.compare_exchange_strong(expected, true)) shutdown(fd_, SHUT_RDWR);
}

void Connection::Join() {
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
}

void Connection::ReadLoop() {
  std::vector<char> buffer(256 << 10);
  size_t begin = 0;
  size_t end = 0;
  proto::Frame frame;
  std::string reason = "peer closed the connection";
  while (true) {
    if (buffer.size() - end < (64 << 10)) {
      if (begin > 0) {
        std::memmove(buffer.data(), buffer.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      if (buffer.size() - end < (64 << 10)) buffer.resize(buffer.size() * 2);
    }
    const ssize_t n = ::recv(fd_, buffer.data() + end, buffer.size() - end, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) reason = std::strerror(errno);
      break;
    }
    end += static_cast<size_t>(n);
    bool bad = false;
    while (end - begin >= 4) {
      uint32_t size = 0;
      std::memcpy(&size, buffer.data() + begin, 4);
      if (size > kMaxFrameBytes) {
        reason = absl::StrCat("frame of ", size, " bytes exceeds the limit of ", kMaxFrameBytes);
        bad = true;
        break;
      }
      if (end - begin < 4 + static_cast<size_t>(size)) {
        if (buffer.size() < 4 + static_cast<size_t>(size) + (64 << 10)) {
          buffer.resize(4 + static_cast<size_t>(size) + (64 << 10));
        }
        break;
      }
      frame.Clear();
      if (!frame.ParseFromArray(buffer.data() + begin + 4, static_cast<int>(size))) {
        reason = "malformed frame";
        bad = true;
        break;
      }
      begin += 4 + size;
      if (handlers_.on_frame) handlers_.on_frame(*this, frame);
      if (closed()) break;
    }
    if (begin == end) begin = end = 0;
    if (bad) {
      LUMEN_LOG(WARNING) << "closing connection from " << peer_ << ": " << reason;
      break;
    }
    if (handlers_.on_batch_end) handlers_.on_batch_end(*this);
    if (closed()) break;
  }
  Close();
  if (handlers_.on_close) handlers_.on_close(*this, reason);
  handlers_ = Handlers();
}

absl::StatusOr<std::unique_ptr<WireServer>> WireServer::Start(const std::string& host, int port,
                                                              AcceptHandler on_accept) {
  auto addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      listen(fd, 512) != 0) {
    const std::string reason = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ", reason));
  }
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return std::unique_ptr<WireServer>(
      new WireServer(fd, ntohs(bound.sin_port), std::move(on_accept)));
}

WireServer::WireServer(int fd, int port, AcceptHandler on_accept)
    : fd_(fd), port_(port), on_accept_(std::move(on_accept)) {
  thread_ = std::thread([this] { AcceptLoop(); });
}

WireServer::~WireServer() {
  Stop();
  close(fd_);
}

void WireServer::Stop() {
  if (stopping_.exchange(true)) return;
  shutdown(fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

void WireServer::AcceptLoop() {
  while (!stopping_.load()) {
    const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (!stopping_.load()) LUMEN_LOG(WARNING) << "accept: " << std::strerror(errno);
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      return;
    }
    on_accept_(std::make_shared<Connection>(fd));
  }
}

}  // namespace lumen::internal
