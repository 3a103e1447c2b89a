#include "objectstore/object_store.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace lumen::objectstore {
namespace {

constexpr size_t kKiB = 1024;
constexpr size_t kCapacity = 64 * kKiB;

constexpr uint64_t kClientA = 1;
constexpr uint64_t kClientB = 2;
constexpr absl::Duration kNoWait = absl::ZeroDuration();
// Long enough never to expire in a passing test; only bounds a failing one.
constexpr absl::Duration kLongWait = absl::Seconds(30);

// An ObjectStore over a fresh kCapacity-byte shared-memory region that is unlinked when the test
// ends.
class StoreFixture {
 public:
  StoreFixture() {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_store_test_", getpid(), "_", counter++);
    auto region = ShmRegion::Create(name_, kCapacity);
    REQUIRE(region.ok());
    store_ = std::make_unique<ObjectStore>(*std::move(region));
  }
  ~StoreFixture() { (void)ShmRegion::Unlink(name_); }
  ObjectStore& store() { return *store_; }

 private:
  std::string name_;
  std::unique_ptr<ObjectStore> store_;
};

// Waits until `condition` holds or `timeout` passes; returns whether it held.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = kLongWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST_CASE("a sealed object can be read back at the location it was written") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  auto created = store.Create("obj", 11, kClientA, kClientA, kNoWait);
  REQUIRE(created.ok());
  CHECK(created->size == 11);
  CHECK(created->offset % 64 == 0);
  std::memcpy(store.region().data() + created->offset, "hello world", 11);
  REQUIRE(store.Seal("obj").ok());

  auto got = store.Get("obj", kNoWait);
  REQUIRE(got.ok());
  CHECK(got->offset == created->offset);
  CHECK(got->size == 11);
  CHECK(std::memcmp(store.region().data() + got->offset, "hello world", 11) == 0);

  StoreStats stats = store.Stats();
  CHECK(stats.capacity == kCapacity);
  CHECK(stats.used == 64);
  CHECK(stats.num_objects == 1);

  REQUIRE(store.Release("obj").ok());
  CHECK(store.Get("obj", kNoWait).status().code() == absl::StatusCode::kNotFound);
  CHECK(store.Stats().used == 0);
  CHECK(store.Stats().num_objects == 0);
}

TEST_CASE("object ids are binary strings and zero-size objects get distinct blocks") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  const std::string id("\0\xff\x01", 3);
  const std::string other("\0\xff\x02", 3);
  auto first = store.Create(id, 0, kClientA, kClientA, kNoWait);
  auto second = store.Create(other, 0, kClientA, kClientA, kNoWait);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  CHECK(first->offset != second->offset);
  REQUIRE(store.Seal(id).ok());
  auto got = store.Get(id, kNoWait);
  REQUIRE(got.ok());
  CHECK(got->size == 0);
  CHECK(got->offset == first->offset);
  CHECK(store.Get(other, kNoWait).status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(store.Stats().num_objects == 2);
}

TEST_CASE("creating an id that exists fails with ALREADY_EXISTS") {
  StoreFixture fixture;
  REQUIRE(fixture.store().Create("obj", 100, kClientA, kClientA, kNoWait).ok());
  auto again = fixture.store().Create("obj", 100, kClientB, kClientB, kNoWait);
  CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(fixture.store().Stats().used == 128);
}

TEST_CASE("an object larger than the whole store is rejected with both sizes") {
  StoreFixture fixture;
  auto created = fixture.store().Create("huge", 100000, kClientA, kClientA, kLongWait);
  CHECK(created.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(created.status().message()),
             Catch::Contains("100000") && Catch::Contains("65536"));
}

TEST_CASE("sealing is allowed once and only for known objects") {
  StoreFixture fixture;
  CHECK(fixture.store().Seal("missing").code() == absl::StatusCode::kNotFound);
  REQUIRE(fixture.store().Create("obj", 10, kClientA, kClientA, kNoWait).ok());
  CHECK(fixture.store().Seal("obj").ok());
  CHECK(fixture.store().Seal("obj").code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("getting an object that is never sealed times out with DEADLINE_EXCEEDED") {
  StoreFixture fixture;
  CHECK(fixture.store().Get("missing", kLongWait).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(fixture.store().Create("obj", 10, kClientA, kClientA, kNoWait).ok());
  const absl::Time start = absl::Now();
  auto got = fixture.store().Get("obj", absl::Milliseconds(50));
  CHECK(got.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::Now() - start >= absl::Milliseconds(50));
  CHECK(fixture.store().Stats().waiting_gets == 0);
}

TEST_CASE("a waiting get returns once another thread seals the object") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  auto created = store.Create("obj", 10, kClientA, kClientA, kNoWait);
  REQUIRE(created.ok());
  std::thread sealer([&] {
    if (WaitFor([&] { return store.Stats().waiting_gets == 1; })) (void)store.Seal("obj");
  });
  auto got = store.Get("obj", kLongWait);
  sealer.join();
  REQUIRE(got.ok());
  CHECK(got->offset == created->offset);
}

TEST_CASE("a waiting get fails with NOT_FOUND when the unsealed object is released") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  REQUIRE(store.Create("obj", 10, kClientA, kClientA, kNoWait).ok());
  std::thread releaser([&] {
    if (WaitFor([&] { return store.Stats().waiting_gets == 1; }))
      (void)store.ReleaseClient(kClientA);
  });
  auto got = store.Get("obj", kLongWait);
  releaser.join();
  CHECK(got.status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a full store fails with RESOURCE_EXHAUSTED after the bounded wait") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  REQUIRE(store.Create("a", 40 * kKiB, kClientA, kClientA, kNoWait).ok());
  REQUIRE(store.Create("b", 16 * kKiB, kClientA, kClientA, kNoWait).ok());

  const absl::Time start = absl::Now();
  auto created = store.Create("c", 10000, kClientB, kClientB, absl::Milliseconds(50));
  CHECK(absl::Now() - start >= absl::Milliseconds(50));
  REQUIRE(created.status().code() == absl::StatusCode::kResourceExhausted);
  const std::string message(created.status().message());
  CHECK_THAT(message, Catch::Contains("10000 bytes"));     // the object
  CHECK_THAT(message, Catch::Contains("capacity 65536"));  // the store
  CHECK_THAT(message, Catch::Contains("used 57344"));      // 40 KiB + 16 KiB
  CHECK_THAT(message, Catch::Contains("largest free block 8192"));
  CHECK_THAT(message, Catch::Contains("--object-store-memory"));
  CHECK(store.Stats().num_objects == 2);
  CHECK(store.Stats().waiting_creates == 0);
}

TEST_CASE("freeing space from another thread lets a waiting create succeed") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  REQUIRE(store.Create("a", 40 * kKiB, kClientA, kClientA, kNoWait).ok());
  REQUIRE(store.Seal("a").ok());
  REQUIRE(store.Create("b", 24 * kKiB, kClientB, kClientB, kNoWait).ok());

  // Runs on the other thread, which must not use Catch assertions.
  std::function<bool()> free_space;
  SECTION("by releasing an object") {
    free_space = [&] { return store.Release("a").ok(); };
  }
  SECTION("by releasing the objects of a departed client") {
    free_space = [&] { return store.ReleaseClient(kClientA) == 1; };
  }
  bool saw_waiter = false;
  bool freed = false;
  std::thread freer([&] {
    saw_waiter = WaitFor([&] { return store.Stats().waiting_creates == 1; });
    if (saw_waiter) freed = free_space();
  });
  auto created = store.Create("c", 30 * kKiB, kClientB, kClientB, kLongWait);
  freer.join();
  CHECK(saw_waiter);
  CHECK(freed);
  REQUIRE(created.ok());
  CHECK(created->size == 30 * kKiB);
  CHECK(store.Stats().used == 54 * kKiB);
}

TEST_CASE("a departed client's owned and half-written objects are freed") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  // Created and owned by A, sealed.
  REQUIRE(store.Create("owned", 1000, kClientA, kClientA, kNoWait).ok());
  REQUIRE(store.Seal("owned").ok());
  // Written by A for B, still unsealed: useless without A.
  REQUIRE(store.Create("unsealed", 1000, kClientA, kClientB, kNoWait).ok());
  // Written by A for B and sealed: B still holds it.
  REQUIRE(store.Create("handed_over", 1000, kClientA, kClientB, kNoWait).ok());
  REQUIRE(store.Seal("handed_over").ok());
  // Written by B, owned by A, unsealed: A owned it.
  REQUIRE(store.Create("owned_unsealed", 1000, kClientB, kClientA, kNoWait).ok());

  CHECK(store.ReleaseClient(kClientA) == 3);
  CHECK(store.Stats().num_objects == 1);
  CHECK(store.Get("handed_over", kNoWait).ok());
  CHECK(store.Get("owned", kNoWait).status().code() == absl::StatusCode::kNotFound);
  CHECK(store.Get("unsealed", kNoWait).status().code() == absl::StatusCode::kNotFound);

  CHECK(store.ReleaseClient(kClientA) == 0);
  CHECK(store.ReleaseClient(kClientB) == 1);
  CHECK(store.Stats().used == 0);
  CHECK(store.Stats().num_objects == 0);
}

TEST_CASE("releasing an unknown object fails with NOT_FOUND") {
  StoreFixture fixture;
  CHECK(fixture.store().Release("missing").code() == absl::StatusCode::kNotFound);
  REQUIRE(fixture.store().Create("obj", 10, kClientA, kClientA, kNoWait).ok());
  REQUIRE(fixture.store().Release("obj").ok());
  CHECK(fixture.store().Release("obj").code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lumen::objectstore
