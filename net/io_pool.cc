#include "net/io_pool.h"

#include <pthread.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "common/logging.h"

namespace lumen::net {
namespace {

thread_local bool tls_on_io_thread = false;

}  // namespace

IoPool::IoPool(int threads, const std::string& name) : work_(asio::make_work_guard(context_)) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name] {
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      tls_on_io_thread = true;
      while (true) {
        try {
          context_.run();
          return;
        } catch (const std::exception& e) {
          // A handler threw: log it and keep serving the other connections.
          LUMEN_LOG(ERROR) << "I/O handler threw: " << e.what();
        }
      }
    });
  }
}

IoPool::~IoPool() { Stop(); }

void IoPool::Stop() {
  if (stopped_) return;
  stopped_ = true;
  work_.reset();
  context_.stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

bool IoPool::OnIoThread() { return tls_on_io_thread; }

IoPool::IoThreadScope::IoThreadScope() { tls_on_io_thread = true; }
IoPool::IoThreadScope::~IoThreadScope() { tls_on_io_thread = false; }

int IoPool::ConfiguredThreads(int fallback) {
  const char* env = std::getenv("LUMEN_IO_THREADS");
  int value = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &value) && value >= 1 && value <= 16) return value;
  return fallback;
}

}  // namespace lumen::net
