// A fixed set of I/O threads running one Asio io_context: every socket of a process is served
// here, however many connections or actors it talks to.
//
//   IoPool io(/*threads=*/1, "lumen-io");
//   auto conn = Connection::Connect(io, "127.0.0.1:4242", absl::Seconds(5));
//   ...
//   io.Stop();   // before destroying what handlers reference
//
// Handlers that run here must not block: they move bytes and dispatch work to executors.
// Thread-safe.
#pragma once

#include <asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace lumen::net {

class IoPool {
 public:
  // Starts `threads` threads that run the context until Stop. With 0, the owner's own threads
  // drive context() (one at a time, each inside an IoThreadScope).
  IoPool(int threads, const std::string& name);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  asio::io_context& context() { return context_; }
  int num_threads() const { return static_cast<int>(threads_.size()); }
  // Stops the context and joins the threads (not from one of them). Idempotent.
  void Stop();

  // True on a thread of any IoPool: such a thread must never wait for other I/O.
  static bool OnIoThread();
  // Marks the calling thread as an I/O thread while it lives.
  class IoThreadScope {
   public:
    IoThreadScope();
    ~IoThreadScope();
    IoThreadScope(const IoThreadScope&) = delete;
    IoThreadScope& operator=(const IoThreadScope&) = delete;
  };

  // The thread count for a process: $LUMEN_IO_THREADS if set (1..16), else `fallback`.
  static int ConfiguredThreads(int fallback);

 private:
  asio::io_context context_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

}  // namespace lumen::net
