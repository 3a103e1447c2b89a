// Runs the tasks pushed to this worker on executor threads of its own, never on an I/O thread,
// and sends each reply on the connection the task came from as soon as that task finishes.
//
//   TaskReceiver receiver(run_task, /*threads=*/1, /*max_queued_bytes=*/64 << 20);
//   receiver.Enqueue(conn, std::move(spec));   // on the I/O thread that read the frame
//
// One thread runs tasks in arrival order (a task worker, or an actor that takes one call at a
// time); more threads run them concurrently (an actor with max concurrency > 1). A connection
// whose queued, not yet started tasks pass max_queued_bytes stops being read until the queue
// drains to half, so a caller that outpaces the worker is held back by TCP, not by memory.
//
// Thread-safe. Stop() ends the threads after the tasks they are running.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "net/connection.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

class TaskReceiver {
 public:
  // Computes a task's result.
  using RunFn = std::function<void(const proto::TaskSpec& spec, proto::Value* result)>;

  TaskReceiver(RunFn run, int threads, size_t max_queued_bytes);
  ~TaskReceiver();
  TaskReceiver(const TaskReceiver&) = delete;
  TaskReceiver& operator=(const TaskReceiver&) = delete;

  // Grows the pool to `threads` (an actor's max concurrency, set before its first call).
  void SetThreads(int threads);
  void Enqueue(const std::shared_ptr<net::Connection>& from, proto::TaskSpec&& spec);
  void Stop();

  // Tasks queued and not started.
  size_t queued() const;

 private:
  struct Item {
    std::shared_ptr<net::Connection> from;
    proto::TaskSpec spec;
    size_t bytes = 0;
  };
  void Loop();

  const RunFn run_;
  const size_t max_queued_bytes_;

  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  // Queued bytes per source connection, and which of them are paused.
  absl::flat_hash_map<net::Connection*, size_t> queued_bytes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::internal
