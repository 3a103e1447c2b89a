#include "runtime/internal/object_table.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace lumen::internal {
namespace {

constexpr char kSelf[] = "127.0.0.1:7000";
constexpr char kOwnerA[] = "127.0.0.1:7001";
constexpr char kOwnerB[] = "127.0.0.1:7002";

ValuePtr Data(const std::string& bytes) {
  auto value = std::make_shared<proto::Value>();
  value->set_data(bytes);
  return value;
}

// An ObjectTable for kSelf whose free and borrow handlers record every call.
class TableFixture {
 public:
  struct Freed {
    std::string id;
    ValuePtr value;
  };
  struct Borrow {
    std::string owner;
    std::string id;
    bool add;
    bool operator==(const Borrow& other) const {
      return std::tie(owner, id, add) == std::tie(other.owner, other.id, other.add);
    }
  };

  TableFixture()
      : table_(
            kSelf,
            [this](const std::string& id, const ValuePtr& value) {
              absl::MutexLock lock(&mu_);
              freed_.push_back({id, value});
            },
            [this](const std::string& owner, const std::string& id, bool add) {
              absl::MutexLock lock(&mu_);
              borrows_.push_back({owner, id, add});
            }) {}

  ObjectTable& table() { return table_; }
  std::vector<Freed> freed() {
    absl::MutexLock lock(&mu_);
    return freed_;
  }
  std::vector<Borrow> borrows() {
    absl::MutexLock lock(&mu_);
    return borrows_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Freed> freed_ ABSL_GUARDED_BY(mu_);
  std::vector<Borrow> borrows_ ABSL_GUARDED_BY(mu_);
  ObjectTable table_;
};

// A GetOrSubscribe callback that records the values it is called with.
class Subscriber {
 public:
  ObjectTable::Callback callback() {
    return [this](const ValuePtr& value) {
      absl::MutexLock lock(&mu_);
      values_.push_back(value);
    };
  }
  std::vector<ValuePtr> values() {
    absl::MutexLock lock(&mu_);
    return values_;
  }

 private:
  absl::Mutex mu_;
  std::vector<ValuePtr> values_ ABSL_GUARDED_BY(mu_);
};

ObjectTable::Callback Unexpected() {
  return [](const ValuePtr&) { FAIL("a callback ran that should not have"); };
}

TEST_CASE("an owned object is freed once, with its value, when its last local ref goes",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();

  SECTION("a ready object") {
    const ValuePtr value = Data("payload");
    table.AddOwnedReady(id, value);
    table.AddLocalRef(id, kSelf);
    table.AddLocalRef(id, kSelf);

    table.RemoveLocalRef(id);
    CHECK(fixture.freed().empty());
    CHECK(table.Peek(id) == value);
    CHECK(table.NumOwned() == 1);

    table.RemoveLocalRef(id);
    const auto freed = fixture.freed();
    REQUIRE(freed.size() == 1);
    CHECK(freed[0].id == id);
    CHECK(freed[0].value == value);
    CHECK(table.Peek(id) == nullptr);
    CHECK(table.NumOwned() == 0);

    table.RemoveLocalRef(id);  // One too many: the object is gone, nothing more happens.
    CHECK(fixture.freed().size() == 1);
  }

  SECTION("a pending object is freed without a value") {
    table.AddOwnedPending(id);
    table.AddLocalRef(id, kSelf);
    table.RemoveLocalRef(id);
    const auto freed = fixture.freed();
    REQUIRE(freed.size() == 1);
    CHECK(freed[0].id == id);
    CHECK(freed[0].value == nullptr);
    CHECK(table.NumOwned() == 0);
  }

  CHECK(fixture.borrows().empty());
}

TEST_CASE("borrowers keep an owned object alive after its local refs are gone", "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  const ValuePtr value = Data("shared");
  table.AddOwnedReady(id, value);
  table.AddLocalRef(id, kSelf);

  SECTION("until the last borrower is removed") {
    table.AddBorrower(id, "worker-1");
    table.AddBorrower(id, "worker-2");
    table.RemoveLocalRef(id);
    table.RemoveBorrower(id, "worker-1");
    CHECK(fixture.freed().empty());
    CHECK(table.Peek(id) == value);

    table.RemoveBorrower(id, "worker-2");
    const auto freed = fixture.freed();
    REQUIRE(freed.size() == 1);
    CHECK(freed[0].id == id);
    CHECK(freed[0].value == value);
  }

  SECTION("a borrower that registers twice is one borrower") {
    table.AddBorrower(id, "worker-1");
    table.AddBorrower(id, "worker-1");
    table.RemoveLocalRef(id);
    table.RemoveBorrower(id, "worker-1");
    CHECK(fixture.freed().size() == 1);
  }

  SECTION("removing a borrower that never registered frees nothing while refs remain") {
    table.RemoveBorrower(id, "stranger");
    CHECK(fixture.freed().empty());
    table.RemoveLocalRef(id);
    CHECK(fixture.freed().size() == 1);
  }

  CHECK(table.NumOwned() == 0);
}

TEST_CASE("a borrower of an object the table does not own or know is ignored", "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string unknown = NewObjectId();
  const std::string borrowed = NewObjectId();
  table.AddLocalRef(borrowed, kOwnerA);

  table.AddBorrower(unknown, "worker-1");
  table.AddBorrower(borrowed, "worker-1");
  table.RemoveBorrower(unknown, "worker-1");
  table.RemoveBorrower(borrowed, "worker-1");

  CHECK(table.NumOwned() == 0);
  CHECK(table.NumBorrowed() == 1);
  CHECK(fixture.freed().empty());
}

TEST_CASE("an escaped object survives its local refs until a borrower registers and leaves",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  const ValuePtr value = Data("inner");
  table.AddOwnedReady(id, value);
  table.AddLocalRef(id, kSelf);
  table.MarkEscaped(id);

  SECTION("the borrower registers after the local refs are gone") {
    table.RemoveLocalRef(id);
    CHECK(fixture.freed().empty());
    CHECK(table.Peek(id) == value);

    table.AddBorrower(id, "worker-1");
    CHECK(fixture.freed().empty());

    table.RemoveBorrower(id, "worker-1");
  }

  SECTION("the borrower comes and goes while a local ref remains") {
    table.AddBorrower(id, "worker-1");
    table.RemoveBorrower(id, "worker-1");
    CHECK(fixture.freed().empty());

    table.RemoveLocalRef(id);
  }

  const auto freed = fixture.freed();
  REQUIRE(freed.size() == 1);
  CHECK(freed[0].value == value);
  CHECK(table.NumOwned() == 0);
}

TEST_CASE("borrowed refs call the borrow handler when the first ref comes and the last goes",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  using Borrow = TableFixture::Borrow;

  table.AddLocalRef(id, kOwnerA);
  table.AddLocalRef(id, kOwnerA);
  table.AddLocalRef(id, kOwnerA);
  CHECK(fixture.borrows() == std::vector<Borrow>{{kOwnerA, id, true}});
  CHECK(table.NumBorrowed() == 1);
  CHECK(table.NumOwned() == 0);

  table.RemoveLocalRef(id);
  table.RemoveLocalRef(id);
  CHECK(fixture.borrows().size() == 1);

  table.RemoveLocalRef(id);
  CHECK(fixture.borrows() == std::vector<Borrow>{{kOwnerA, id, true}, {kOwnerA, id, false}});
  CHECK(table.NumBorrowed() == 0);
  CHECK(fixture.freed().empty());  // Dropping a borrowed object frees nothing here.

  SECTION("borrowing again after the last ref went starts a new borrow") {
    table.AddLocalRef(id, kOwnerA);
    CHECK(fixture.borrows().size() == 3);
    CHECK(fixture.borrows().back() == Borrow{kOwnerA, id, true});
  }

  SECTION("refs to owned objects never call the borrow handler") {
    const std::string owned = NewObjectId();
    table.AddOwnedReady(owned, Data("x"));
    table.AddLocalRef(owned, kSelf);
    table.RemoveLocalRef(owned);
    CHECK(fixture.freed().size() == 1);
    CHECK(fixture.borrows().size() == 2);
  }
}

TEST_CASE("GetOrSubscribe returns a ready value at once without keeping the callback",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  const ValuePtr value = Data("ready");
  std::string owner;

  SECTION("an owned object") {
    owner = kSelf;
    table.AddOwnedReady(id, value);
  }
  SECTION("a borrowed object whose value arrived") {
    owner = kOwnerA;
    table.AddLocalRef(id, kOwnerA);
    table.SetValue(id, value);
  }

  bool fetch = true;
  CHECK(table.GetOrSubscribe(id, owner, Unexpected(), &fetch) == value);
  CHECK_FALSE(fetch);
  table.SetValue(id, Data("late duplicate"));  // Must not run the callback nor replace the value.
  CHECK(table.Peek(id) == value);
}

TEST_CASE("GetOrSubscribe on a pending owned object runs the callbacks once SetValue arrives",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  table.AddOwnedPending(id);
  table.AddLocalRef(id, kSelf);
  Subscriber first;
  Subscriber second;

  bool fetch = true;
  CHECK(table.GetOrSubscribe(id, kSelf, first.callback(), &fetch) == nullptr);
  CHECK_FALSE(fetch);  // The owner never asks anyone: its own task will produce the value.
  CHECK(table.GetOrSubscribe(id, kSelf, second.callback(), &fetch) == nullptr);
  CHECK_FALSE(fetch);
  CHECK(first.values().empty());
  CHECK(table.Peek(id) == nullptr);

  const ValuePtr value = Data("result");
  table.SetValue(id, value);
  CHECK(first.values() == std::vector<ValuePtr>{value});
  CHECK(second.values() == std::vector<ValuePtr>{value});

  table.SetValue(id, Data("duplicate"));
  CHECK(first.values().size() == 1);
  CHECK(second.values().size() == 1);
  CHECK(table.GetOrSubscribe(id, kSelf, Unexpected(), &fetch) == value);
  CHECK(fixture.freed().empty());
}

TEST_CASE("a pending borrowed object asks its owner for the value only once", "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  table.AddLocalRef(id, kOwnerA);
  Subscriber first;
  Subscriber second;

  bool fetch = false;
  CHECK(table.GetOrSubscribe(id, kOwnerA, first.callback(), &fetch) == nullptr);
  CHECK(fetch);
  CHECK(table.GetOrSubscribe(id, kOwnerA, second.callback(), &fetch) == nullptr);
  CHECK_FALSE(fetch);
  CHECK(table.PendingFetches(kOwnerA) == std::vector<std::string>{id});
  CHECK(table.PendingFetches(kOwnerB).empty());

  const ValuePtr value = Data("from the owner");
  table.SetValue(id, value);
  CHECK(first.values() == std::vector<ValuePtr>{value});
  CHECK(second.values() == std::vector<ValuePtr>{value});
  CHECK(table.PendingFetches(kOwnerA).empty());
  CHECK(table.Peek(id) == value);
}

TEST_CASE("a value for an owned object that was already freed goes to the free handler",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  table.AddOwnedPending(id);
  table.AddLocalRef(id, kSelf);
  table.RemoveLocalRef(id);
  REQUIRE(fixture.freed().size() == 1);

  const ValuePtr value = Data("too late");
  table.SetValue(id, value);
  const auto freed = fixture.freed();
  REQUIRE(freed.size() == 2);
  CHECK(freed[1].id == id);
  CHECK(freed[1].value == value);
  CHECK(table.Peek(id) == nullptr);
  CHECK(table.NumOwned() == 0);
}

TEST_CASE("an owned object the table no longer knows resolves to an OBJECT_LOST error",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();

  SECTION("never known") {}
  SECTION("freed when its last ref went") {
    table.AddOwnedReady(id, Data("gone"));
    table.AddLocalRef(id, kSelf);
    table.RemoveLocalRef(id);
  }

  bool fetch = true;
  const ValuePtr value = table.GetOrSubscribe(id, kSelf, Unexpected(), &fetch);
  REQUIRE(value != nullptr);
  REQUIRE(value->has_error());
  CHECK(value->error().kind() == proto::ErrorInfo::OBJECT_LOST);
  CHECK_THAT(value->error().message(), Catch::Contains(ShortHex(id)));
  CHECK_FALSE(fetch);
  CHECK(table.NumOwned() == 0);
  CHECK(table.NumBorrowed() == 0);
}

TEST_CASE("the death of an owner fails its pending borrowed objects with OWNER_DIED",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string pending_a = NewObjectId();
  const std::string ready_a = NewObjectId();
  const std::string pending_b = NewObjectId();
  const std::string owned = NewObjectId();
  const ValuePtr ready_value = Data("arrived before the owner died");
  Subscriber on_pending_a;
  Subscriber on_pending_b;
  Subscriber on_owned;
  bool fetch = false;

  table.AddLocalRef(pending_a, kOwnerA);
  CHECK(table.GetOrSubscribe(pending_a, kOwnerA, on_pending_a.callback(), &fetch) == nullptr);
  table.AddLocalRef(ready_a, kOwnerA);
  table.SetValue(ready_a, ready_value);
  table.AddLocalRef(pending_b, kOwnerB);
  CHECK(table.GetOrSubscribe(pending_b, kOwnerB, on_pending_b.callback(), &fetch) == nullptr);
  table.AddOwnedPending(owned);
  table.AddLocalRef(owned, kSelf);
  CHECK(table.GetOrSubscribe(owned, kSelf, on_owned.callback(), &fetch) == nullptr);

  table.FailBorrowedFrom(kOwnerA, "connection reset");

  const auto failed = on_pending_a.values();
  REQUIRE(failed.size() == 1);
  REQUIRE(failed[0]->has_error());
  CHECK(failed[0]->error().kind() == proto::ErrorInfo::OWNER_DIED);
  CHECK_THAT(failed[0]->error().message(), Catch::Contains(kOwnerA) &&
                                               Catch::Contains("connection reset") &&
                                               Catch::Contains(ShortHex(pending_a)));
  CHECK(table.Peek(pending_a) == failed[0]);
  CHECK(table.PendingFetches(kOwnerA).empty());

  CHECK(table.Peek(ready_a) == ready_value);
  CHECK(on_pending_b.values().empty());
  CHECK(table.Peek(pending_b) == nullptr);
  CHECK(table.PendingFetches(kOwnerB) == std::vector<std::string>{pending_b});
  CHECK(on_owned.values().empty());
  CHECK(table.Peek(owned) == nullptr);

  SECTION("a reply that arrives after the failure changes nothing") {
    table.SetValue(pending_a, Data("late reply"));
    CHECK(on_pending_a.values().size() == 1);
    CHECK(table.Peek(pending_a) == failed[0]);
  }
}

TEST_CASE("handlers and callbacks may call back into the table", "[object_table]") {
  // A handler that re-entered the table's lock would deadlock here instead of passing.
  std::unique_ptr<ObjectTable> table;
  std::vector<size_t> owned_seen_by_free_handler;
  std::vector<size_t> borrowed_seen_by_borrow_handler;
  table = std::make_unique<ObjectTable>(
      kSelf,
      [&](const std::string&, const ValuePtr&) {
        owned_seen_by_free_handler.push_back(table->NumOwned());
      },
      [&](const std::string&, const std::string&, bool) {
        borrowed_seen_by_borrow_handler.push_back(table->NumBorrowed());
      });

  const std::string owned = NewObjectId();
  table->AddOwnedPending(owned);
  table->AddLocalRef(owned, kSelf);
  ValuePtr seen_by_callback;
  bool fetch = false;
  table->GetOrSubscribe(
      owned, kSelf, [&](const ValuePtr&) { seen_by_callback = table->Peek(owned); }, &fetch);
  const ValuePtr value = Data("v");
  table->SetValue(owned, value);
  CHECK(seen_by_callback == value);
  table->RemoveLocalRef(owned);
  CHECK(owned_seen_by_free_handler == std::vector<size_t>{0});

  const std::string borrowed = NewObjectId();
  table->AddLocalRef(borrowed, kOwnerA);
  table->RemoveLocalRef(borrowed);
  CHECK(borrowed_seen_by_borrow_handler == std::vector<size_t>{1, 0});
}

TEST_CASE("local refs taken and dropped on many threads free an owned object exactly once",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  table.AddOwnedReady(id, Data("contended"));
  table.AddLocalRef(id, kSelf);

  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&table, &id] {
      for (int i = 0; i < kRounds; ++i) {
        table.AddLocalRef(id, kSelf);
        table.RemoveLocalRef(id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(fixture.freed().empty());

  table.RemoveLocalRef(id);
  CHECK(fixture.freed().size() == 1);
}

// A borrowed object's value can arrive after this process dropped its last ref (e.g. a Get that
// timed out); releasing it would free a store copy this process never owned.
TEST_CASE("a borrowed object's value arriving after its last ref went is not treated as freed",
          "[object_table]") {
  TableFixture fixture;
  ObjectTable& table = fixture.table();
  const std::string id = NewObjectId();
  table.AddLocalRef(id, kOwnerA);
  bool fetch = false;
  Subscriber subscriber;
  CHECK(table.GetOrSubscribe(id, kOwnerA, subscriber.callback(), &fetch) == nullptr);
  REQUIRE(fetch);
  table.RemoveLocalRef(id);

  table.SetValue(id, Data("the owner's late reply"));
  CHECK(fixture.freed().empty());
}

}  // namespace
}  // namespace lumen::internal
