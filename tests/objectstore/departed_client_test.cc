// The store and clients that went away: their half-made objects are freed, and their creates
// that arrive (or wait for room) after their cleanup allocate nothing.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "objectstore/object_store.h"

namespace lumen::objectstore {
namespace {

constexpr size_t kCapacity = size_t{64} * 1024;
constexpr uint64_t kGone = 7;
constexpr uint64_t kOther = 8;

class DepartedFixture {
 public:
  DepartedFixture() {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_departed_test_", getpid(), "_", counter++);
    auto region = ShmRegion::Create(name_, kCapacity);
    REQUIRE(region.ok());
    store_ = std::make_unique<ObjectStore>(*std::move(region));
  }
  ~DepartedFixture() { (void)ShmRegion::Unlink(name_); }
  ObjectStore& store() { return *store_; }

 private:
  std::string name_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_CASE("a departed client's unsealed object is freed by its cleanup", "[objectstore]") {
  DepartedFixture f;
  REQUIRE(f.store().Create("half", 1024, kGone, kOther, absl::ZeroDuration()).ok());
  CHECK(f.store().ReleaseClient(kGone) == 1);
  CHECK(f.store().Stats().used == 0);
}

TEST_CASE("a create from a client whose cleanup already ran allocates nothing", "[objectstore]") {
  DepartedFixture f;
  f.store().ReleaseClient(kGone);
  auto late = f.store().Create("late", 1024, kGone, kGone, absl::ZeroDuration());
  CHECK(absl::IsFailedPrecondition(late.status()));
  CHECK(f.store().Stats().used == 0);
  // Others are not affected.
  CHECK(f.store().Create("fine", 1024, kOther, kOther, absl::ZeroDuration()).ok());
}

TEST_CASE("a create waiting for room fails when its client's cleanup runs", "[objectstore]") {
  DepartedFixture f;
  const uint64_t capacity = f.store().Stats().capacity;
  REQUIRE(f.store().Create("full", capacity, kOther, kOther, absl::ZeroDuration()).ok());
  REQUIRE(f.store().Seal("full").ok());
  std::atomic<bool> done{false};
  absl::Status waited;
  std::thread waiter([&] {
    waited = f.store().Create("waits", 1024, kGone, kGone, absl::Seconds(30)).status();
    done = true;
  });
  // Cleanup of the waiting client, then room: the waiting create must not take it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (f.store().Stats().waiting_creates == 0 && absl::Now() < deadline) {
    std::this_thread::yield();
  }
  f.store().ReleaseClient(kGone);
  while (!done && absl::Now() < deadline) std::this_thread::yield();
  REQUIRE(f.store().Release("full").ok());
  waiter.join();
  CHECK(absl::IsFailedPrecondition(waited));
  CHECK(f.store().Stats().used == 0);
}

}  // namespace
}  // namespace lumen::objectstore
