#include "objectstore/spill_manager.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "tests/objectstore/store_fixture.h"
#include "tests/temp_dir.h"

namespace lumen::objectstore {
namespace {

constexpr size_t kKiB = 1024;
// Two 24 KiB objects fit; a third does not.
constexpr size_t kCapacity = 64 * kKiB;
constexpr size_t kObject = 24 * kKiB;
constexpr uint64_t kOwner = 1;
constexpr uint64_t kReader = 2;
// Long enough never to expire in a passing test; only bounds a failing one.
constexpr absl::Duration kLongWait = absl::Seconds(10);

// A store, and a spill manager writing to a fresh folder that is removed afterwards.
class SpillFixture : public testing::StoreFixture {
 public:
  SpillFixture() : testing::StoreFixture(kCapacity) {
    spill_ = std::make_unique<SpillManager>(store(), root_.Sub("spill"));
  }
  SpillManager& spill() { return *spill_; }

  // A sealed primary copy of `size` bytes, each byte `fill`.
  void Put(const std::string& id, char fill, size_t size = kObject) {
    auto location = store().Create(id, size, kOwner, kOwner, absl::ZeroDuration());
    REQUIRE(location.ok());
    std::memset(store().region().data() + location->offset, fill, size);
    REQUIRE(store().Seal(id).ok());
  }
  // Whether `id` is in memory with every byte `fill`.
  bool Holds(const std::string& id, char fill) {
    auto location = store().Pin(id, kReader);
    if (!location.ok()) return false;
    const std::string bytes(
        reinterpret_cast<const char*>(store().region().data() + location->offset), location->size);
    (void)store().Unpin(id, kReader);
    return bytes == std::string(kObject, fill);
  }

 private:
  lumen::testing::TempDir root_{"spill"};  // declared first: removed after the spill manager
  std::unique_ptr<SpillManager> spill_;
};

TEST_CASE("a spilled object's bytes come back on restore and its file goes") {
  SpillFixture f;
  f.Put("s", 's');
  CHECK(f.spill().MakeRoom(kCapacity) == kObject);
  CHECK(f.spill().IsSpilled("s"));
  CHECK_FALSE(f.store().Pin("s", kReader).ok());
  REQUIRE(f.spill().Restore("s", kLongWait).ok());
  CHECK_FALSE(f.spill().IsSpilled("s"));
  CHECK(f.Holds("s", 's'));
  CHECK(f.spill().stats().objects == 0);
  CHECK(f.spill().Restore("s", kLongWait).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a released spilled object's file is deleted and it cannot be restored") {
  SpillFixture f;
  f.Put("s", 's');
  REQUIRE(f.spill().MakeRoom(kCapacity) == kObject);
  CHECK(f.spill().Delete("s"));
  CHECK(f.spill().stats().bytes == 0);
  CHECK(f.spill().Restore("s", kLongWait).code() == absl::StatusCode::kNotFound);
}

// The store is full of pinned primary copies when room is needed; the pins go while the request
// waits. The copies stay referenced, so they can only be spilled, not evicted.
TEST_CASE("a request that finds every copy pinned spills them once their pins go") {
  SpillFixture f;
  f.Put("s", 's');
  REQUIRE(f.spill().MakeRoom(kCapacity) == kObject);
  f.Put("a", 'a');
  f.Put("b", 'b');
  REQUIRE(f.store().Pin("a", kReader).ok());
  REQUIRE(f.store().Pin("b", kReader).ok());

  bool saw_waiter = false;
  std::thread reader([&] {
    saw_waiter =
        testing::WaitFor([&] { return f.store().Stats().waiting_creates == 1; }, kLongWait);
    // Well into the wait, past the spill attempt that found nothing to spill.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (void)f.store().Unpin("a", kReader);
    (void)f.store().Unpin("b", kReader);
  });
  SECTION("restoring a spilled object") {
    const absl::Status restored = f.spill().Restore("s", kLongWait);
    reader.join();
    CHECK(saw_waiter);
    REQUIRE(restored.ok());
    CHECK(f.Holds("s", 's'));
  }
  SECTION("creating an object") {
    auto created = f.store().Create("c", kObject, kOwner, kOwner, kLongWait, CopyKind::kPrimary,
                                    [&](uint64_t size) { f.spill().MakeRoom(size); });
    reader.join();
    CHECK(saw_waiter);
    REQUIRE(created.ok());
  }
  // One of the unpinned copies went to disk, and comes back whole.
  CHECK(f.spill().IsSpilled("a") != f.spill().IsSpilled("b"));
  const std::string spilled = f.spill().IsSpilled("a") ? "a" : "b";
  CHECK(f.store().Release(spilled == "a" ? "b" : "a").ok());
  REQUIRE(f.spill().Restore(spilled, kLongWait).ok());
  CHECK(f.Holds(spilled, spilled[0]));
}

TEST_CASE("a request that can spill nothing fails after its whole wait without spinning") {
  SpillFixture f;
  f.Put("a", 'a');
  f.Put("b", 'b');
  REQUIRE(f.store().Pin("a", kReader).ok());
  REQUIRE(f.store().Pin("b", kReader).ok());
  int calls = 0;
  auto created = f.store().Create("c", kObject, kOwner, kOwner, absl::Milliseconds(300),
                                  CopyKind::kPrimary, [&](uint64_t size) {
                                    ++calls;
                                    f.spill().MakeRoom(size);
                                  });
  CHECK(created.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(created.status().message()), Catch::Contains("after waiting 300ms"));
  CHECK(calls == 1);
  CHECK(f.spill().stats().spilled_total == 0);
}

}  // namespace
}  // namespace lumen::objectstore
