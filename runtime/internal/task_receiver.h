// Runs the tasks pushed to this worker on executor threads, never inside an I/O handler, and
// sends each reply on the connection the task came from as soon as that task finishes.
//
//   net::IoPool io(/*threads=*/0, "lumen-io");            // driven by the receiver's threads
//   TaskReceiver receiver(run_task, /*executors=*/1, /*max_queued_bytes=*/64 << 20, &io);
//   receiver.Enqueue(conn, std::move(spec));   // in the I/O handler that read the frame
//
// Threads: executors + 1, a fixed number, taking turns (leader/follower). At any moment at most
// one of them is the process's I/O thread and runs `io`'s handlers; the others run tasks or wait.
// When the I/O thread reads a task while an executor waits, it leaves the I/O role and runs the
// task itself: a caller that waits on each reply pays no handoff between threads. While that
// task runs no thread runs I/O, and the thread takes the role back when the task ends; if the
// task takes longer than kIoVacancy, or blocks (YieldIo), a waiting thread becomes the I/O
// thread at once, so I/O never waits on a long task. While every executor is busy, arriving
// tasks queue and executors take them in arrival order. With one executor, tasks run one at a
// time in arrival order (a task worker, or an actor that takes one call at a time); with more
// they run concurrently (an actor with max concurrency > 1).
//
// A connection whose queued, not yet started tasks pass max_queued_bytes stops being read until
// the queue drains to half, so a caller that outpaces the worker is held back by TCP, not by
// memory.
//
// Thread-safe. Stop() stops `io` and ends the threads after the tasks they are running.
#pragma once

#include <chrono>
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
#include "net/io_pool.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

class TaskReceiver {
 public:
  // Computes a task's result.
  using RunFn = std::function<void(const proto::TaskSpec& spec, proto::Value* result)>;

  // How long I/O may pause while the thread that read a task runs it.
  static constexpr std::chrono::milliseconds kIoVacancy{5};

  // `io` must have no threads of its own: the receiver's threads drive it.
  TaskReceiver(RunFn run, int executors, size_t max_queued_bytes, net::IoPool* io);
  ~TaskReceiver();
  TaskReceiver(const TaskReceiver&) = delete;
  TaskReceiver& operator=(const TaskReceiver&) = delete;

  // Grows to `executors` executor threads (an actor's max concurrency, before its first call).
  void SetExecutors(int executors);
  // `bytes`: the task's size on the wire (bounds what queues per connection).
  void Enqueue(const std::shared_ptr<net::Connection>& from, proto::TaskSpec&& spec, size_t bytes);
  // Called by a task about to block (Get, Wait, backpressure) or that has just submitted a
  // call, whose reply (and the calls queued behind it) need the I/O thread: if its thread left
  // the I/O role vacant to run it, a waiting thread takes the role now. Otherwise a no-op that
  // takes no lock.
  void YieldIo();
  void Stop();

  // Tasks queued and not started.
  size_t queued() const;

 private:
  enum class IoRole {
    kNone,    // nobody runs I/O: the next thread that looks takes the role
    kActive,  // a thread runs I/O
    kVacant,  // the I/O thread runs a task it read; it takes the role back afterwards
  };
  struct Item {
    std::shared_ptr<net::Connection> from;
    proto::TaskSpec spec;
    size_t bytes = 0;
  };
  void Loop();
  // Takes the oldest queued task.
  Item PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Item& item);
  // Waits (without mu_) until woken or the vacancy deadline fires; true if it fired.
  bool WaitForWake();
  void Wake(int threads);
  void ArmVacancyTimer(bool arm);

  const RunFn run_;
  const size_t max_queued_bytes_;
  net::IoPool* const io_;
  // Wakes waiting threads (a semaphore) and fires when a vacancy lasts too long.
  const int wake_fd_;
  const int timer_fd_;

  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  // Queued bytes per source connection (its reading pauses past the bound).
  absl::flat_hash_map<net::Connection*, size_t> queued_bytes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  IoRole io_role_ ABSL_GUARDED_BY(mu_) = IoRole::kNone;
  // The thread that left the I/O role vacant, while it is.
  std::thread::id vacated_by_ ABSL_GUARDED_BY(mu_);
  // Threads waiting, and queued tasks that waiting threads were woken to take.
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  int grants_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::internal
