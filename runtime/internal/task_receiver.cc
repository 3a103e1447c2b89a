#include "runtime/internal/task_receiver.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

namespace lumen::internal {
namespace {

// The receiver whose I/O role this thread left vacant to run the task it is running, if any.
thread_local const TaskReceiver* t_vacated = nullptr;

}  // namespace

TaskReceiver::TaskReceiver(RunFn run, int executors, size_t max_queued_bytes, net::IoPool* io)
    : run_(std::move(run)),
      max_queued_bytes_(max_queued_bytes),
      io_(io),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE)),
      timer_fd_(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) {
  SetExecutors(executors);
}

TaskReceiver::~TaskReceiver() {
  Stop();
  close(wake_fd_);
  close(timer_fd_);
}

void TaskReceiver::SetExecutors(int executors) {
  absl::MutexLock lock(&mu_);
  // One thread more than executors: the one that is the I/O thread at the moment.
  while (!stopping_ && static_cast<int>(threads_.size()) < std::max(1, executors) + 1) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "lumen-worker");
      Loop();
    });
  }
}

void TaskReceiver::Enqueue(const std::shared_ptr<net::Connection>& from, proto::TaskSpec&& spec,
                           size_t bytes) {
  Item item;
  item.from = from;
  item.bytes = bytes;
  item.spec.Swap(&spec);
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  size_t& queued = queued_bytes_[from.get()];
  queued += item.bytes;
  if (queued > max_queued_bytes_) from->PauseReading();
  queue_.push_back(std::move(item));
}

TaskReceiver::Item TaskReceiver::PopLocked() {
  Item item = std::move(queue_.front());
  queue_.pop_front();
  auto it = queued_bytes_.find(item.from.get());
  if (it != queued_bytes_.end()) {
    const bool was_over = it->second > max_queued_bytes_;
    it->second -= std::min(it->second, item.bytes);
    if (was_over && it->second <= max_queued_bytes_ / 2) item.from->ResumeReading();
    if (it->second == 0) queued_bytes_.erase(it);
  }
  return item;
}

void TaskReceiver::Run(Item& item) {
  proto::Frame frame;
  frame.mutable_reply()->set_seq(item.spec.seq());
  run_(item.spec, frame.mutable_reply()->mutable_result());
  // The reply leaves now, written from this thread while the socket takes it, so that it is
  // in the kernel before the next task can start (and perhaps crash the process).
  item.from->Send(frame, /*flush=*/true);
}

void TaskReceiver::Wake(int threads) {
  if (threads <= 0) return;
  const auto count = static_cast<uint64_t>(threads);
  ssize_t ignored = write(wake_fd_, &count, sizeof(count));
  (void)ignored;
}

void TaskReceiver::ArmVacancyTimer(bool arm) {
  itimerspec spec{};
  if (arm) {
    uint64_t stale = 0;  // an expiration of an earlier vacancy nobody read
    ssize_t ignored = read(timer_fd_, &stale, sizeof(stale));
    (void)ignored;
    spec.it_value.tv_nsec =
        std::chrono::duration_cast<std::chrono::nanoseconds>(kIoVacancy).count();
  }
  timerfd_settime(timer_fd_, 0, &spec, nullptr);
}

bool TaskReceiver::WaitForWake() {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {timer_fd_, POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  uint64_t value = 0;
  if ((fds[0].revents & POLLIN) != 0) {
    ssize_t ignored = read(wake_fd_, &value, sizeof(value));
    (void)ignored;
  }
  return (fds[1].revents & POLLIN) != 0 && read(timer_fd_, &value, sizeof(value)) > 0;
}

void TaskReceiver::Loop() {
  const std::thread::id me = std::this_thread::get_id();
  bool leader = false;
  while (true) {
    Item item;
    bool vacated = false;
    if (leader) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        // Tasks wait and a thread is free to take over the I/O if this one runs long: run
        // them here, with the I/O role left vacant meanwhile.
        const bool run_here = !queue_.empty() && idle_ > 0;
        if (run_here) {
          item = PopLocked();
          io_role_ = IoRole::kVacant;
          vacated_by_ = me;
          vacated = true;
          leader = false;
          ArmVacancyTimer(true);
          // With more executors waiting, they take what else queued (one stays on standby).
          grants_ = std::min(static_cast<int>(queue_.size()), idle_ - 1);
          Wake(grants_);
        }
      }
      if (leader) {
        net::IoPool::IoThreadScope io_thread;
        io_->context().run_one();
        continue;
      }
    } else {
      absl::MutexLock lock(&mu_);
      bool got = false;
      while (!got) {
        if (stopping_) return;
        if (io_role_ == IoRole::kNone) {
          io_role_ = IoRole::kActive;
          leader = true;
          break;
        }
        if (io_role_ == IoRole::kVacant && vacated_by_ == me) {
          // Back from running a task with the I/O left vacant: more work, or the role back.
          if (!queue_.empty()) {
            item = PopLocked();
            vacated = true;
            got = true;
            break;
          }
          io_role_ = IoRole::kActive;
          ArmVacancyTimer(false);
          leader = true;
          break;
        }
        if (!queue_.empty()) {  // an executor that finished drains the queue
          item = PopLocked();
          got = true;
          break;
        }
        ++idle_;
        mu_.Unlock();
        const bool vacancy_too_long = WaitForWake();
        mu_.Lock();
        --idle_;
        if (vacancy_too_long && io_role_ == IoRole::kVacant) {
          io_role_ = IoRole::kActive;  // the I/O thread runs long: take over the I/O
          leader = true;
          break;
        }
        if (grants_ > 0 && !queue_.empty() && io_role_ != IoRole::kNone) {
          --grants_;
          item = PopLocked();
          got = true;
        }
      }
      if (leader) continue;
    }
    t_vacated = vacated ? this : nullptr;
    Run(item);
    t_vacated = nullptr;
  }
}

void TaskReceiver::YieldIo() {
  if (t_vacated != this) return;
  t_vacated = nullptr;
  absl::MutexLock lock(&mu_);
  if (io_role_ != IoRole::kVacant || vacated_by_ != std::this_thread::get_id()) return;
  io_role_ = IoRole::kNone;
  ArmVacancyTimer(false);
  Wake(1);
}

void TaskReceiver::Stop() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) Wake(static_cast<int>(threads_.size()));
    stopping_ = true;
    threads.swap(threads_);
    queue_.clear();
    queued_bytes_.clear();
  }
  io_->context().stop();
  for (auto& thread : threads) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

size_t TaskReceiver::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace lumen::internal
