#include "runtime/internal/task_receiver.h"

#include <pthread.h>

#include <utility>

namespace lumen::internal {

TaskReceiver::TaskReceiver(RunFn run, int threads, size_t max_queued_bytes)
    : run_(std::move(run)), max_queued_bytes_(max_queued_bytes) {
  SetThreads(threads);
}

TaskReceiver::~TaskReceiver() { Stop(); }

void TaskReceiver::SetThreads(int threads) {
  absl::MutexLock lock(&mu_);
  while (static_cast<int>(threads_.size()) < threads && !stopping_) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "lumen-exec");
      Loop();
    });
  }
}

void TaskReceiver::Enqueue(const std::shared_ptr<net::Connection>& from, proto::TaskSpec&& spec) {
  Item item;
  item.from = from;
  item.bytes = spec.ByteSizeLong();
  item.spec.Swap(&spec);
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  size_t& queued = queued_bytes_[from.get()];
  queued += item.bytes;
  if (queued > max_queued_bytes_) from->PauseReading();
  queue_.push_back(std::move(item));
}

void TaskReceiver::Loop() {
  while (true) {
    Item item;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TaskReceiver* self)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      auto it = queued_bytes_.find(item.from.get());
      if (it != queued_bytes_.end()) {
        const bool was_over = it->second > max_queued_bytes_;
        it->second -= std::min(it->second, item.bytes);
        if (was_over && it->second <= max_queued_bytes_ / 2) item.from->ResumeReading();
        if (it->second == 0) queued_bytes_.erase(it);
      }
    }
    proto::Frame frame;
    frame.mutable_reply()->set_seq(item.spec.seq());
    run_(item.spec, frame.mutable_reply()->mutable_result());
    // The reply leaves now, written from this thread while the socket takes it, so that it
    // is in the kernel before the next task can start (and perhaps crash the process).
    item.from->Send(frame, /*flush=*/true);
  }
}

void TaskReceiver::Stop() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    threads.swap(threads_);
    queue_.clear();
    queued_bytes_.clear();
  }
  for (auto& thread : threads) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

size_t TaskReceiver::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace lumen::internal
