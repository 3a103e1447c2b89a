#include "runtime/internal/pin_client.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace lumen::internal {
namespace {

// The store's side of pinning, kept in memory: which objects exist where, and how many pins each
// holds. Counts the requests it gets.
class FakeStore : public PinClient::Transport {
 public:
  void Add(const std::string& id, uint64_t offset, uint64_t size) {
    absl::MutexLock lock(&mu_);
    objects_[id] = {offset, size};
  }
  absl::StatusOr<std::vector<Pinned>> Pin(const std::vector<std::string>& ids) override {
    absl::MutexLock lock(&mu_);
    ++pin_requests_;
    std::vector<Pinned> out(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = objects_.find(ids[i]);
      if (it == objects_.end()) {
        out[i].status = absl::NotFoundError("object " + ids[i] + " is not in the store");
        continue;
      }
      ++pins_[ids[i]];
      out[i].offset = it->second.first;
      out[i].size = it->second.second;
    }
    return out;
  }
  absl::Status Unpin(const std::vector<std::string>& ids) override {
    absl::MutexLock lock(&mu_);
    ++unpin_requests_;
    for (const auto& id : ids) {
      if (--pins_[id] == 0) pins_.erase(id);
    }
    return absl::OkStatus();
  }
  int pins(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto it = pins_.find(id);
    return it == pins_.end() ? 0 : it->second;
  }
  size_t pinned_objects() {
    absl::MutexLock lock(&mu_);
    return pins_.size();
  }
  int pin_requests() {
    absl::MutexLock lock(&mu_);
    return pin_requests_;
  }
  int unpin_requests() {
    absl::MutexLock lock(&mu_);
    return unpin_requests_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> objects_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> pins_ ABSL_GUARDED_BY(mu_);
  int pin_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int unpin_requests_ ABSL_GUARDED_BY(mu_) = 0;
};

constexpr size_t kRegionSize = 1 << 20;

// A PinClient over a fresh shared-memory region with two objects, "a" and "b", whose bytes are
// 'a's and 'b's.
class PinFixture {
 public:
  PinFixture() {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_pin_test_", getpid(), "_", counter++);
    auto region = objectstore::ShmRegion::Create(name_, kRegionSize);
    REQUIRE(region.ok());
    region_ = std::shared_ptr<objectstore::ShmRegion>(*std::move(region));
    auto store = std::make_unique<FakeStore>();
    store_ = store.get();
    AddObject("a", 0, 1000, 'a');
    AddObject("b", 4096, 10, 'b');
    client_ = std::make_unique<PinClient>(std::move(store), region_);
  }
  ~PinFixture() { (void)objectstore::ShmRegion::Unlink(name_); }

  void AddObject(const std::string& id, uint64_t offset, uint64_t size, char fill) {
    std::memset(region_->data() + offset, fill, size);
    store_->Add(id, offset, size);
  }
  static proto::StoreLocation Location(const std::string& id, uint64_t size) {
    proto::StoreLocation location;
    location.set_object_id(id);
    location.set_size(size);
    return location;
  }

  FakeStore& store() { return *store_; }
  PinClient& client() { return *client_; }
  std::unique_ptr<PinClient>& client_slot() { return client_; }

 private:
  std::string name_;
  std::shared_ptr<objectstore::ShmRegion> region_;
  FakeStore* store_ = nullptr;
  std::unique_ptr<PinClient> client_;
};

TEST_CASE("a pinned buffer shows the object's bytes and the object stays pinned while it lives",
          "[pin_client]") {
  PinFixture fixture;
  const proto::StoreLocation a = PinFixture::Location("a", 1000);
  auto first = fixture.client().Pin({&a});
  REQUIRE(first.ok());
  const std::shared_ptr<Buffer>& buffer = (*first)[0];
  CHECK(buffer->in_store());
  CHECK(buffer->size() == 1000);
  CHECK(std::string(buffer->data(), 1000) == std::string(1000, 'a'));
  CHECK(fixture.store().pins("a") == 1);

  // A second view costs no request and no second pin.
  auto second = fixture.client().Pin({&a});
  REQUIRE(second.ok());
  CHECK(fixture.store().pin_requests() == 1);
  CHECK(fixture.client().num_pinned() == 1);

  first->clear();
  fixture.client().FlushUnpins();
  CHECK(fixture.store().pins("a") == 1);  // the second view still reads it
  second->clear();
  CHECK(fixture.store().pins("a") == 1);  // until the next flush
  fixture.client().FlushUnpins();
  CHECK(fixture.store().pins("a") == 0);
  CHECK(fixture.client().num_pinned() == 0);
  fixture.client().FlushUnpins();
  CHECK(fixture.store().unpin_requests() == 1);
}

TEST_CASE("one request pins every object of a batch, each id once", "[pin_client]") {
  PinFixture fixture;
  const proto::StoreLocation a = PinFixture::Location("a", 1000);
  const proto::StoreLocation b = PinFixture::Location("b", 10);
  auto buffers = fixture.client().Pin({&a, &b, &a});
  REQUIRE(buffers.ok());
  REQUIRE(buffers->size() == 3);
  CHECK((*buffers)[0]->data() == (*buffers)[2]->data());
  CHECK(std::string((*buffers)[1]->data(), 10) == std::string(10, 'b'));
  CHECK(fixture.store().pin_requests() == 1);
  CHECK(fixture.store().pins("a") == 1);
  CHECK(fixture.store().pins("b") == 1);
}

TEST_CASE("an object the store no longer has fails the pin with NOT_FOUND and pins nothing",
          "[pin_client]") {
  PinFixture fixture;
  const proto::StoreLocation a = PinFixture::Location("a", 1000);
  const proto::StoreLocation gone = PinFixture::Location("gone", 10);
  auto buffers = fixture.client().Pin({&a, &gone});
  CHECK(buffers.status().code() == absl::StatusCode::kNotFound);
  fixture.client().FlushUnpins();
  CHECK(fixture.store().pinned_objects() == 0);
}

TEST_CASE("a store answer that does not fit the location or the region is refused",
          "[pin_client]") {
  PinFixture fixture;
  SECTION("a size other than the location's") {
    const proto::StoreLocation a = PinFixture::Location("a", 999);
    CHECK(fixture.client().Pin({&a}).status().code() == absl::StatusCode::kInternal);
  }
  SECTION("a place outside the region") {
    fixture.store().Add("outside", kRegionSize - 10, 20);
    const proto::StoreLocation outside = PinFixture::Location("outside", 20);
    CHECK(fixture.client().Pin({&outside}).status().code() == absl::StatusCode::kInternal);
  }
  SECTION("a location without an object id") {
    const proto::StoreLocation anonymous = PinFixture::Location("", 10);
    CHECK(fixture.client().Pin({&anonymous}).status().code() == absl::StatusCode::kInvalidArgument);
  }
  fixture.client().FlushUnpins();
  CHECK(fixture.store().pinned_objects() == 0);
}

TEST_CASE("a buffer outlives its PinClient and still reads the object", "[pin_client]") {
  PinFixture fixture;
  const proto::StoreLocation b = PinFixture::Location("b", 10);
  auto buffers = fixture.client().Pin({&b});
  REQUIRE(buffers.ok());
  fixture.client_slot().reset();
  CHECK(std::string((*buffers)[0]->data(), 10) == std::string(10, 'b'));
  buffers->clear();  // must not touch the destroyed client
}

TEST_CASE("pins and unpins from many threads leave every pin accounted for", "[pin_client]") {
  PinFixture fixture;
  const proto::StoreLocation a = PinFixture::Location("a", 1000);
  const proto::StoreLocation b = PinFixture::Location("b", 10);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        auto buffers = fixture.client().Pin({(i + t) % 2 == 0 ? &a : &b});
        if (!buffers.ok() || (*buffers)[0]->size() == 0) ++failures;
        if (i % 50 == 0) fixture.client().FlushUnpins();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == 0);
  fixture.client().FlushUnpins();
  CHECK(fixture.store().pinned_objects() == 0);
  CHECK(fixture.client().num_pinned() == 0);
}

}  // namespace
}  // namespace lumen::internal
