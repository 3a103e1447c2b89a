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
#include "tests/objectstore/store_fixture.h"

namespace lumen::objectstore {
namespace {

constexpr size_t kKiB = 1024;
constexpr size_t kCapacity = 64 * kKiB;

constexpr uint64_t kClientA = 1;
constexpr uint64_t kClientB = 2;
constexpr absl::Duration kNoWait = absl::ZeroDuration();
// Long enough never to expire in a passing test; only bounds a failing one.
constexpr absl::Duration kLongWait = absl::Seconds(30);

class StoreFixture : public testing::StoreFixture {
 public:
  StoreFixture() : testing::StoreFixture(kCapacity) {}
};

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = kLongWait) {
  return testing::WaitFor(condition, timeout);
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

// Creates and seals an object of `size` bytes whose bytes are all `fill`.
ObjectLocation MakeSealed(ObjectStore& store, const std::string& id, size_t size, char fill,
                          uint64_t owner, CopyKind kind = CopyKind::kPrimary) {
  auto created = store.Create(id, size, owner, owner, kNoWait, kind);
  REQUIRE(created.ok());
  std::memset(store.region().data() + created->offset, fill, size);
  REQUIRE(store.Seal(id).ok());
  return *created;
}

bool AllBytesAre(ObjectStore& store, const ObjectLocation& location, char fill) {
  const uint8_t* data = store.region().data() + location.offset;
  for (size_t i = 0; i < location.size; ++i) {
    if (data[i] != static_cast<uint8_t>(fill)) return false;
  }
  return true;
}

TEST_CASE("a pinned object outlives its owner's release and the last unpin frees it") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  const ObjectLocation location = MakeSealed(store, "obj", 1000, 'x', kClientA);
  auto pinned = store.Pin("obj", kClientB);
  REQUIRE(pinned.ok());
  CHECK(pinned->offset == location.offset);
  CHECK(pinned->size == 1000);
  CHECK(store.Stats().pinned_objects == 1);
  CHECK(store.Stats().pinned_bytes == 1024);

  REQUIRE(store.Release("obj").ok());
  // Released but still readable by the pinning client, and its space is not handed out.
  CHECK(store.Stats().num_objects == 1);
  CHECK(store.Stats().released_pinned_objects == 1);
  CHECK(store.Pin("obj", kClientA).status().code() == absl::StatusCode::kNotFound);
  CHECK(store.Release("obj").code() == absl::StatusCode::kNotFound);
  auto other = store.Create("other", kCapacity - 1024, kClientA, kClientA, kNoWait);
  REQUIRE(other.ok());
  CHECK(other->offset != location.offset);
  CHECK(AllBytesAre(store, location, 'x'));

  REQUIRE(store.Unpin("obj", kClientB).ok());
  CHECK(store.Stats().num_objects == 1);  // only "other"
  CHECK(store.Stats().pinned_objects == 0);
  CHECK(store.Stats().released_pinned_objects == 0);
  CHECK(store.Stats().used == kCapacity - 1024);
}

TEST_CASE("pins are counted per client and only the last unpin releases the object") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  MakeSealed(store, "obj", 100, 'x', kClientA);
  REQUIRE(store.Pin("obj", kClientB).ok());
  REQUIRE(store.Pin("obj", kClientB).ok());
  REQUIRE(store.Pin("obj", kClientA).ok());
  REQUIRE(store.Release("obj").ok());
  REQUIRE(store.Unpin("obj", kClientB).ok());
  REQUIRE(store.Unpin("obj", kClientA).ok());
  CHECK(store.Stats().num_objects == 1);  // B still holds one pin
  CHECK(store.Unpin("obj", kClientA).code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(store.Unpin("obj", kClientB).ok());
  CHECK(store.Stats().num_objects == 0);
  CHECK(store.Stats().used == 0);
  CHECK(store.Unpin("obj", kClientB).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("an object that is unknown or not sealed cannot be pinned") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  CHECK(store.Pin("missing", kClientA).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store.Create("unsealed", 10, kClientA, kClientA, kNoWait).ok());
  CHECK(store.Pin("unsealed", kClientA).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(store.Stats().pinned_objects == 0);
}

TEST_CASE("a departed client's pins are dropped, freeing what only it still held") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  MakeSealed(store, "released", 1000, 'r', kClientA);
  MakeSealed(store, "kept", 1000, 'k', kClientA);
  REQUIRE(store.Pin("released", kClientB).ok());
  REQUIRE(store.Pin("released", kClientB).ok());
  REQUIRE(store.Pin("kept", kClientB).ok());
  REQUIRE(store.Release("released").ok());

  CHECK(store.ReleaseClient(kClientB) == 1);
  CHECK(store.Stats().num_objects == 1);
  CHECK(store.Stats().pinned_objects == 0);
  CHECK(store.Pin("kept", kClientA).ok());  // its owner still has it
}

TEST_CASE("a departed owner's pinned object stays readable until its readers unpin") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  const ObjectLocation location = MakeSealed(store, "obj", 1000, 'o', kClientA);
  REQUIRE(store.Pin("obj", kClientB).ok());
  CHECK(store.ReleaseClient(kClientA) == 0);
  CHECK(store.Stats().num_objects == 1);
  CHECK(AllBytesAre(store, location, 'o'));
  CHECK(store.Pin("obj", kClientB).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(store.Unpin("obj", kClientB).ok());
  CHECK(store.Stats().num_objects == 0);
}

TEST_CASE(
    "eviction under pressure frees unpinned secondary copies and never a pinned or primary "
    "object") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  constexpr size_t kQuarter = kCapacity / 4;
  const ObjectLocation primary = MakeSealed(store, "primary", kQuarter, 'p', kClientA);
  const ObjectLocation pinned =
      MakeSealed(store, "pinned", kQuarter, 's', kClientA, CopyKind::kSecondary);
  MakeSealed(store, "old", kQuarter, 'o', kClientA, CopyKind::kSecondary);
  MakeSealed(store, "young", kQuarter, 'y', kClientA, CopyKind::kSecondary);
  REQUIRE(store.Pin("pinned", kClientB).ok());
  CHECK(store.Stats().evictable_objects == 2);

  // Room for one quarter: the least recently unpinned copy goes.
  auto first = store.Create("new1", kQuarter, kClientB, kClientB, kNoWait);
  REQUIRE(first.ok());
  CHECK(store.Stats().evicted_objects == 1);
  CHECK(store.Pin("old", kClientB).status().code() == absl::StatusCode::kNotFound);
  CHECK(store.Pin("young", kClientB).ok());
  REQUIRE(store.Unpin("young", kClientB).ok());

  // Room for another: the last evictable copy goes.
  REQUIRE(store.Create("new2", kQuarter, kClientB, kClientB, kNoWait).ok());
  CHECK(store.Stats().evicted_objects == 2);
  CHECK(store.Stats().evictable_objects == 0);

  // Nothing else may go: the create fails after its wait, and the pinned secondary copy and the
  // primary object keep their bytes.
  auto refused = store.Create("new3", kQuarter, kClientB, kClientB, absl::Milliseconds(20));
  CHECK(refused.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(store.Stats().evicted_objects == 2);
  CHECK(AllBytesAre(store, primary, 'p'));
  CHECK(AllBytesAre(store, pinned, 's'));

  // Once unpinned, the secondary copy becomes evictable again and makes room.
  REQUIRE(store.Unpin("pinned", kClientB).ok());
  REQUIRE(store.Create("new3", kQuarter, kClientB, kClientB, kNoWait).ok());
  CHECK(store.Stats().evicted_objects == 3);
  CHECK(AllBytesAre(store, primary, 'p'));
}

TEST_CASE("an unsealed secondary copy is never evicted") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  REQUIRE(
      store.Create("pulling", kCapacity, kClientA, kClientA, kNoWait, CopyKind::kSecondary).ok());
  CHECK(store.Stats().evictable_objects == 0);
  CHECK(store.Create("new", 64, kClientB, kClientB, kNoWait).status().code() ==
        absl::StatusCode::kResourceExhausted);
}

TEST_CASE("a create waiting for space proceeds when a secondary copy is unpinned") {
  StoreFixture fixture;
  ObjectStore& store = fixture.store();
  MakeSealed(store, "copy", kCapacity, 'c', kClientA, CopyKind::kSecondary);
  REQUIRE(store.Pin("copy", kClientB).ok());
  bool saw_waiter = false;
  bool unpinned = false;
  std::thread unpinner([&] {
    saw_waiter = WaitFor([&] { return store.Stats().waiting_creates == 1; });
    if (saw_waiter) unpinned = store.Unpin("copy", kClientB).ok();
  });
  auto created = store.Create("new", kCapacity / 2, kClientB, kClientB, kLongWait);
  unpinner.join();
  CHECK(saw_waiter);
  CHECK(unpinned);
  REQUIRE(created.ok());
  CHECK(store.Stats().evicted_objects == 1);
}

}  // namespace
}  // namespace lumen::objectstore
