// A client connection that can be used while it is still being established: frames sent
// before the connection is up wait, in order, behind the hello and go out once it is.
//
//   auto link = Link::Open(io, owner_address, MakeHello(token, self), options,
//                          {.on_frame = ..., .on_close = ...});
//   link->Send(frame);          // never blocks; queued until connected
//
// A failed connect and a later loss both end in one on_close(reason); a closed link stays
// closed (open a new one to reconnect). Thread-safe; handlers run on an I/O thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "net/connection.h"

namespace lumen::net {

class Link : public std::enable_shared_from_this<Link> {
 public:
  struct Handlers {
    std::function<void(Connection&, proto::Frame&)> on_frame;
    std::function<void(const std::string& reason)> on_close;
  };

  // With a `payload_sink`, the connection takes payloads (Connection::SetPayloadSink).
  static std::shared_ptr<Link> Open(IoPool& io, const std::string& address, proto::Frame hello,
                                    const ConnectionOptions& options, Handlers handlers,
                                    absl::Duration connect_timeout = absl::Seconds(10),
                                    Connection::PayloadSink payload_sink = nullptr);

  // Queues or sends `frame`. False once the link is closed.
  bool Send(const proto::Frame& frame, bool flush = true);
  void Close(const std::string& reason = "closed locally");
  bool closed() const;
  const std::string& address() const { return address_; }

  Link(std::string address, Handlers handlers, Connection::PayloadSink payload_sink)
      : address_(std::move(address)),
        handlers_(std::move(handlers)),
        payload_sink_(std::move(payload_sink)) {}

 private:
  void OnConnected(absl::StatusOr<std::shared_ptr<Connection>> result, const proto::Frame& hello);
  void OnClosed(const std::string& reason);

  const std::string address_;
  const Handlers handlers_;
  const Connection::PayloadSink payload_sink_;

  mutable absl::Mutex mu_;
  std::shared_ptr<Connection> conn_ ABSL_GUARDED_BY(mu_);
  std::vector<proto::Frame> queued_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::net
