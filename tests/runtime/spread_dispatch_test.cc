// How a SPREAD shape asks for leases and shares its tasks out over them, driven by a
// hand-written stand-in for the task submitter's dispatch loop.
#include "runtime/internal/spread_dispatch.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace lumen::internal {
namespace {

constexpr int kDefaultPending = 4;

// The submitter's side: leased workers (each with its tally) and a queue of tasks. Dispatch()
// hands queued tasks, one at a time, to the worker that has taken the fewest, as long as
// SpreadDispatch lets one take it.
class FakeSubmitter {
 public:
  SpreadDispatch spread;

  void Queue(size_t tasks) {
    if (queued_ == 0 && !busy_) spread.StartBurst();
    queued_ += tasks;
    busy_ = true;
  }
  size_t AddWorker(const std::string& node_id) {
    spread.WorkerAdded(node_id);
    workers_.push_back({.node_id = node_id});
    return workers_.size() - 1;
  }
  void RemoveWorker(size_t index) {
    spread.WorkerGone(workers_[index].node_id);
    workers_.erase(workers_.begin() + static_cast<std::ptrdiff_t>(index));
  }
  void Dispatch() {
    while (queued_ > 0) {
      Worker* best = nullptr;
      for (Worker& worker : workers_) {
        if (!spread.MayTake(worker.tally, queued_)) continue;
        if (best == nullptr || worker.ran < best->ran) best = &worker;
      }
      if (best == nullptr) return;
      spread.Took(best->tally);
      ++best->ran;
      --queued_;
    }
  }
  // Every task dispatched so far finished: the shape is idle.
  void FinishAll() { busy_ = queued_ > 0; }
  size_t queued() const { return queued_; }
  int64_t ran(size_t index) const { return workers_[index].ran; }
  bool AnyMayTake() const {
    for (const Worker& worker : workers_) {
      if (spread.MayTake(worker.tally, queued_)) return true;
    }
    return false;
  }

 private:
  struct Worker {
    std::string node_id;
    SpreadDispatch::Tally tally{};
    int64_t ran = 0;
  };
  std::vector<Worker> workers_;
  size_t queued_ = 0;
  bool busy_ = false;
};

}  // namespace

TEST_CASE("a SPREAD shape asks for a lease on every feasible node that holds none of its leases",
          "[spread]") {
  SpreadDispatch spread;
  SECTION("before the head's node count is known it asks for the default number") {
    CHECK(spread.LeasesWanted(10000, kDefaultPending) == kDefaultPending);
  }
  SECTION("with the count it asks for one lease per node, never more than the tasks queued") {
    spread.set_feasible_nodes(32);
    CHECK(spread.LeasesWanted(10000, kDefaultPending) == 32);
    CHECK(spread.LeasesWanted(10, kDefaultPending) == 10);
    CHECK(spread.LeasesWanted(0, kDefaultPending) == 0);
  }
  SECTION("nodes that hold a lease count once however many workers they lend") {
    spread.set_feasible_nodes(8);
    spread.WorkerAdded("a");
    spread.WorkerAdded("a");
    spread.WorkerAdded("b");
    CHECK(spread.held_nodes() == 2);
    CHECK(spread.LeasesWanted(10000, 0) == 6);
    spread.WorkerGone("a");
    CHECK(spread.held_nodes() == 2);
    spread.WorkerGone("a");
    CHECK(spread.held_nodes() == 1);
    CHECK(spread.LeasesWanted(10000, 0) == 7);
  }
  SECTION("once every node holds a lease it keeps asking for the default number, as before") {
    spread.set_feasible_nodes(3);
    for (const char* node : {"a", "b", "c"}) spread.WorkerAdded(node);
    CHECK(spread.LeasesWanted(10000, kDefaultPending) == kDefaultPending);
  }
  SECTION("a count that is not positive is ignored") {
    spread.set_feasible_nodes(5);
    spread.set_feasible_nodes(0);
    CHECK(spread.feasible_nodes() == 5);
  }
}

TEST_CASE("the first worker granted takes only its share while leases are routed to other nodes",
          "[spread]") {
  FakeSubmitter submitter;
  submitter.Queue(100);
  for (int i = 0; i < 3; ++i) submitter.spread.OnRouted();
  const size_t first = submitter.AddWorker("a");
  submitter.Dispatch();
  CHECK(submitter.ran(first) == 25);
  CHECK(submitter.queued() == 75);

  // The routed leases arrive one by one, each becoming a worker that takes its share.
  std::vector<size_t> others;
  for (const char* node : {"b", "c", "d"}) {
    submitter.spread.OnRoutedDone();
    others.push_back(submitter.AddWorker(node));
    submitter.Dispatch();
  }
  CHECK(submitter.queued() == 0);
  for (size_t worker : others) CHECK(submitter.ran(worker) == 25);
}

TEST_CASE("a routed lease that brings no worker gives its share to the others", "[spread]") {
  FakeSubmitter submitter;
  submitter.Queue(9);
  submitter.spread.OnRouted();
  const size_t a = submitter.AddWorker("a");
  const size_t b = submitter.AddWorker("b");
  submitter.Dispatch();
  CHECK(submitter.ran(a) == 3);
  CHECK(submitter.ran(b) == 3);
  CHECK(submitter.queued() == 3);
  CHECK(!submitter.AnyMayTake());

  submitter.spread.OnRoutedDone();  // its node was busy: no worker
  submitter.Dispatch();
  CHECK(submitter.queued() == 0);
  CHECK(submitter.ran(a) + submitter.ran(b) == 9);
}

TEST_CASE("with no lease routed some worker always has room for a queued task", "[spread]") {
  FakeSubmitter submitter;
  submitter.AddWorker("a");
  // Tasks arrive in waves while workers come and go; none is ever stranded in the queue.
  for (int wave = 0; wave < 50; ++wave) {
    submitter.Queue(static_cast<size_t>(1 + (wave * 7) % 13));
    if (wave % 5 == 2) submitter.AddWorker("n" + std::to_string(wave));
    if (wave % 9 == 8) submitter.RemoveWorker(0);
    INFO("wave " << wave);
    CHECK(submitter.AnyMayTake());
    submitter.Dispatch();
    CHECK(submitter.queued() == 0);
    if (wave % 3 == 0) submitter.FinishAll();
  }
}

TEST_CASE("a new burst shares its tasks out afresh", "[spread]") {
  FakeSubmitter submitter;
  const size_t a = submitter.AddWorker("a");
  submitter.Queue(10);
  submitter.Dispatch();
  CHECK(submitter.ran(a) == 10);  // alone, it takes the whole burst
  submitter.FinishAll();

  const size_t b = submitter.AddWorker("b");
  submitter.Queue(10);
  submitter.Dispatch();
  // Without a fresh start `b` would take all ten to catch up with `a`.
  CHECK(submitter.ran(b) == 5);
  CHECK(submitter.ran(a) == 15);
}

}  // namespace lumen::internal
