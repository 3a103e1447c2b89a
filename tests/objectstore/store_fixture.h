// Shared by the object store's unit tests: a store over a fresh shared-memory region, and a
// bounded wait for a condition another thread makes true.
#pragma once

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "objectstore/object_store.h"

namespace lumen::objectstore::testing {

// An ObjectStore over a fresh `capacity`-byte shared-memory region that is unlinked when the
// test ends.
class StoreFixture {
 public:
  explicit StoreFixture(size_t capacity) {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_store_test_", getpid(), "_", counter++);
    auto region = ShmRegion::Create(name_, capacity);
    REQUIRE(region.ok());
    store_ = std::make_unique<ObjectStore>(*std::move(region));
  }
  ~StoreFixture() { (void)ShmRegion::Unlink(name_); }
  StoreFixture(const StoreFixture&) = delete;
  StoreFixture& operator=(const StoreFixture&) = delete;
  ObjectStore& store() { return *store_; }

 private:
  std::string name_;
  std::unique_ptr<ObjectStore> store_;
};

// Waits until `condition` holds or `timeout` passes; returns whether it held.
inline bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace lumen::objectstore::testing
