#include "net/link.h"

namespace lumen::net {

std::shared_ptr<Link> Link::Open(IoPool& io, const std::string& address, proto::Frame hello,
                                 const ConnectionOptions& options, Handlers handlers,
                                 absl::Duration connect_timeout,
                                 Connection::PayloadSink payload_sink) {
  auto link = std::make_shared<Link>(address, std::move(handlers), std::move(payload_sink));
  std::weak_ptr<Link> weak = link;
  Connection::AsyncConnect(
      io, address, connect_timeout, options,
      [weak, hello = std::move(hello)](absl::StatusOr<std::shared_ptr<Connection>> result) {
        if (auto self = weak.lock()) {
          self->OnConnected(std::move(result), hello);
        } else if (result.ok()) {
          (*result)->Close("link dropped while connecting");
        }
      });
  return link;
}

void Link::OnConnected(absl::StatusOr<std::shared_ptr<Connection>> result,
                       const proto::Frame& hello) {
  if (!result.ok()) {
    OnClosed(std::string(result.status().message()));
    return;
  }
  std::shared_ptr<Connection> conn = *result;
  std::weak_ptr<Link> weak = weak_from_this();
  if (payload_sink_) {
    conn->SetPayloadSink([weak](Connection& c, const proto::Frame& frame, size_t bytes) -> char* {
      auto self = weak.lock();
      return self == nullptr ? nullptr : self->payload_sink_(c, frame, bytes);
    });
  }
  conn->Start({
      .on_frame =
          [weak](Connection& c, proto::Frame& frame) {
            auto self = weak.lock();
            if (self != nullptr && self->handlers_.on_frame) self->handlers_.on_frame(c, frame);
          },
      .on_batch_end = nullptr,
      .on_close =
          [weak](Connection&, const std::string& reason) {
            if (auto self = weak.lock()) self->OnClosed(reason);
          },
  });
  absl::MutexLock lock(&mu_);
  if (closed_) {
    conn->Close("link closed while connecting");
    return;
  }
  conn->Send(hello, /*flush=*/false);
  for (const auto& frame : queued_) conn->Send(frame, /*flush=*/false);
  queued_.clear();
  conn_ = conn;
  conn->Flush();
}

bool Link::Send(const proto::Frame& frame, bool flush) {
  std::shared_ptr<Connection> conn;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    if (conn_ == nullptr) {
      queued_.push_back(frame);
      return true;
    }
    conn = conn_;
  }
  return conn->Send(frame, flush);
}

void Link::Close(const std::string& reason) {
  std::shared_ptr<Connection> conn;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    conn = conn_;
    queued_.clear();
  }
  if (conn != nullptr) {
    conn->Close(reason);
  } else {
    OnClosed(reason);
  }
}

bool Link::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void Link::OnClosed(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    queued_.clear();
    if (notified_) return;
    notified_ = true;
  }
  if (handlers_.on_close) handlers_.on_close(reason);
}

}  // namespace lumen::net
