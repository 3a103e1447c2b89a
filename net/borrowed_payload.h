// Bytes that a net::Connection sends without copying them (Connection::SendBorrowed).
//
//   auto pin = std::make_shared<Pin>(store, id);   // keeps the bytes valid while it lives
//   conn->SendBorrowed(frame, {.data = bytes, .size = n, .keep_alive = std::move(pin)});
//
// The connection holds `keep_alive` while the bytes may still be read, and drops it exactly
// once: after they were handed to the kernel, or when the connection closes (or is destroyed)
// before that. Until then `data` must stay valid and unchanged.
#pragma once

#include <cstddef>
#include <memory>

namespace lumen::net {

struct BorrowedPayload {
  const char* data = nullptr;
  size_t size = 0;
  // Dropped (on the connection's I/O thread, or the thread that destroys it) once the bytes
  // are no longer needed; its destructor releases whatever keeps them valid.
  std::shared_ptr<const void> keep_alive;
};

}  // namespace lumen::net
