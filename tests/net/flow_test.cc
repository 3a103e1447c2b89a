#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "net/flow_control.h"
#include "net/link.h"
#include "runtime/internal/task_receiver.h"
#include "tests/net/net_test_util.h"

namespace lumen::net {
namespace {

using testing::FastOptions;
using testing::Inbox;
using testing::kLongWait;
using testing::kToken;
using testing::TaskFrame;
using testing::TestListener;

TEST_CASE("the limiter holds a caller at the call bound until a release", "[net]") {
  InFlightLimiter limiter({.max_calls = 2, .max_bytes = 1 << 20});
  REQUIRE(limiter.Acquire(10));
  REQUIRE(limiter.Acquire(10));
  std::atomic<bool> admitted{false};
  std::atomic<int> waits{0};
  std::thread third([&] {
    limiter.Acquire(10, [&] { ++waits; });
    admitted = true;
  });
  absl::SleepFor(absl::Milliseconds(100));
  CHECK_FALSE(admitted.load());
  limiter.Release(10);
  third.join();
  CHECK(admitted.load());
  CHECK(waits.load() == 1);
  CHECK(limiter.calls() == 2);
}

TEST_CASE("the limiter holds a caller at the byte bound, but lets one huge call go alone",
          "[net]") {
  InFlightLimiter limiter({.max_calls = 100, .max_bytes = 1000});
  REQUIRE(limiter.Acquire(5000));  // alone: admitted although over the bound
  std::atomic<bool> admitted{false};
  std::thread second([&] {
    limiter.Acquire(10);
    admitted = true;
  });
  absl::SleepFor(absl::Milliseconds(100));
  CHECK_FALSE(admitted.load());
  limiter.Release(5000);
  second.join();
  CHECK(limiter.bytes() == 10);
}

TEST_CASE("cancelling the limiter wakes a waiting caller with a refusal", "[net]") {
  InFlightLimiter limiter({.max_calls = 1, .max_bytes = 1000});
  REQUIRE(limiter.Acquire(1));
  std::atomic<int> result{-1};
  std::thread waiter([&] { result = limiter.Acquire(1) ? 1 : 0; });
  absl::SleepFor(absl::Milliseconds(50));
  limiter.Cancel();
  waiter.join();
  CHECK(result.load() == 0);
}

TEST_CASE("frames sent on a link before it connected arrive after its hello, in order", "[net]") {
  IoPool io(1, "test-io");
  TestListener server(io);
  std::atomic<int> closes{0};
  auto link = Link::Open(io, server.address(), MakeHello(kToken, "me:1"), FastOptions(),
                         {.on_frame = nullptr, .on_close = [&](const std::string&) { ++closes; }});
  for (int i = 0; i < 50; ++i) REQUIRE(link->Send(TaskFrame(i)));
  REQUIRE(server.WaitForAccepted(1));
  CHECK(server.hello(0).address() == "me:1");
  REQUIRE(server.inbox(0).WaitForFrames(50));
  const auto frames = server.inbox(0).frames();
  for (int i = 0; i < 50; ++i) CHECK(frames[i].task().seq() == static_cast<uint64_t>(i));
  link->Close();
  CHECK(link->closed());
  CHECK_FALSE(link->Send(TaskFrame(99)));
  const absl::Time deadline = absl::Now() + kLongWait;
  while (closes.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  CHECK(closes.load() == 1);
  io.Stop();
}

TEST_CASE("a link to an address nobody serves reports one close and refuses frames", "[net]") {
  IoPool io(1, "test-io");
  absl::Mutex mu;
  int closes = 0;
  std::string reason;
  auto link = Link::Open(io, "127.0.0.1:1", MakeHello(kToken, ""), FastOptions(),
                         {.on_frame = nullptr, .on_close = [&](const std::string& r) {
                            absl::MutexLock lock(&mu);
                            ++closes;
                            reason = r;
                          }});
  {
    absl::MutexLock lock(&mu);
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(
                                    +[](int* n) { return *n > 0; }, &closes),
                                kLongWait));
    CHECK(reason.find("127.0.0.1:1") != std::string::npos);
  }
  CHECK_FALSE(link->Send(TaskFrame(1)));
  io.Stop();
  absl::MutexLock lock(&mu);
  CHECK(closes == 1);
}

// The worker side of the fast path: tasks run on executor threads and reply one by one.
TEST_CASE("the task receiver replies to each task as it finishes, in arrival order", "[net]") {
  IoPool io(1, "test-io");
  absl::Mutex mu;
  std::vector<std::string> ran;
  internal::TaskReceiver receiver(
      [&](const proto::TaskSpec& spec, proto::Value* result) {
        CHECK_FALSE(IoPool::OnIoThread());
        if (spec.function() == "slow") absl::SleepFor(absl::Milliseconds(700));
        result->set_data(spec.function());
        absl::MutexLock lock(&mu);
        ran.push_back(spec.function());
      },
      /*threads=*/1, /*max_queued_bytes=*/1 << 20);
  // The receiving side of a listener hands tasks to the receiver, as a worker does.
  auto listener = Listener::Start(io, "127.0.0.1", 0, kToken, FastOptions(),
                                  [&](const std::shared_ptr<Connection>&, const proto::Hello&) {
                                    return Connection::Handlers{
                                        .on_frame =
                                            [&](Connection& c, proto::Frame& frame) {
                                              receiver.Enqueue(c.shared_from_this(),
                                                               std::move(*frame.mutable_task()));
                                            },
                                        .on_batch_end = nullptr,
                                        .on_close = nullptr};
                                  });
  REQUIRE(listener.ok());
  Inbox replies;
  auto conn = Connection::Connect(io, absl::StrCat("127.0.0.1:", (*listener)->port()),
                                  absl::Seconds(5), FastOptions());
  REQUIRE(conn.ok());
  (*conn)->Start(replies.Handlers());
  (*conn)->Send(MakeHello(kToken, ""), false);
  (*conn)->Send(TaskFrame(1, "fast"), false);
  (*conn)->Send(TaskFrame(2, "slow"), false);
  (*conn)->Send(TaskFrame(3, "after"), true);
  // The fast task's reply arrives while the slow one still runs.
  REQUIRE(replies.WaitForFrames(1, absl::Milliseconds(500)));
  CHECK(replies.frames().at(0).reply().seq() == 1);
  CHECK(replies.frames().size() == 1);
  REQUIRE(replies.WaitForFrames(3));
  CHECK(replies.frames().at(1).reply().seq() == 2);
  CHECK(replies.frames().at(2).reply().seq() == 3);
  {
    absl::MutexLock lock(&mu);
    CHECK(ran == std::vector<std::string>{"fast", "slow", "after"});
  }
  receiver.Stop();
  (*conn)->Close();
  (*listener)->Stop();
  io.Stop();
}

}  // namespace
}  // namespace lumen::net
