// The reference-counting protocol of ObjectTable beyond local refs: refs inside values, the
// handoff of a ref a worker returns to its caller (in either arrival order), and subscriptions
// dropped by Gets that time out. Each test plays the messages of the other processes by hand.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "runtime/internal/object_table.h"

namespace lumen::internal {
namespace {

constexpr char kSelf[] = "127.0.0.1:7000";
constexpr char kOwnerA[] = "127.0.0.1:7001";
constexpr char kWorker[] = "127.0.0.1:7002";

// A table for kSelf that logs, in order, every free, borrow update and handoff it sends out.
class Recorder {
 public:
  Recorder()
      : table_(
            kSelf, [this](const std::string& id, const ValuePtr&) { Log("free " + id); },
            [this](const std::string& owner, const std::string& id, bool add) {
              Log(absl::StrCat(add ? "add " : "remove ", owner, " ", id));
            },
            [this](const std::string& owner, const std::string& id, const std::string& token,
                   bool give, const std::string&) {
              Log(absl::StrCat(give ? "give " : "take ", owner, " ", id, " ", token));
            }) {}
  ObjectTable& table() { return table_; }
  std::vector<std::string> log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }

 private:
  void Log(const std::string& line) {
    absl::MutexLock lock(&mu_);
    log_.push_back(line);
  }
  absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  ObjectTable table_;
};

// A value whose bytes hold refs to `contained` (object id, owner).
ValuePtr Holding(const std::vector<std::pair<std::string, std::string>>& contained) {
  auto value = std::make_shared<proto::Value>();
  value->set_data("bytes");
  value->set_handoff_token("t1");
  for (const auto& [id, owner] : contained) {
    proto::RefInfo* ref = value->add_contained();
    ref->set_object_id(id);
    ref->set_owner_address(owner);
  }
  return value;
}

// The caller's side of a task whose result holds a ref to `inner`: the result arrives.
void ResultArrives(ObjectTable& table, const std::string& inner, const std::string& owner) {
  table.AddOwnedPending("outer");
  table.AddLocalRef("outer", kSelf);
  table.SetValue("outer", Holding({{inner, owner}}));
}

TEST_CASE("a returned borrowed ref outlives the worker's remove that arrives before the result",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.AddLocalRef("x", kSelf);
  t.AddBorrower("x", kWorker);
  t.RemoveLocalRef("x");  // the caller dropped its ref while the task ran
  // The worker's stream: it hands x over, then ends its borrow.
  t.ApplyHandoff("x", "t1", /*give=*/true);
  t.RemoveBorrower("x", kWorker);
  CHECK(r.log().empty());
  ResultArrives(t, "x", kSelf);
  CHECK(t.Peek("x") != nullptr);
  t.RemoveLocalRef("outer");
  CHECK(r.log() == std::vector<std::string>{"free outer", "free x"});
}

TEST_CASE("a returned borrowed ref outlives a result that arrives before the worker's handoff",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.AddLocalRef("x", kSelf);
  t.AddBorrower("x", kWorker);
  t.RemoveLocalRef("x");
  ResultArrives(t, "x", kSelf);  // takes before the worker's give arrived
  t.ApplyHandoff("x", "t1", /*give=*/true);
  t.RemoveBorrower("x", kWorker);
  CHECK(r.log().empty());
  t.RemoveLocalRef("outer");
  CHECK(r.log() == std::vector<std::string>{"free outer", "free x"});
}

TEST_CASE("a handed-over object stays while a handoff is given and not taken",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.ApplyHandoff("x", "t1", /*give=*/true);
  t.ApplyHandoff("x", "t2", /*give=*/true);
  t.ApplyHandoff("x", "t1", /*give=*/false);
  t.ApplyHandoff("x", "t1", /*give=*/false);  // a stray take does not cancel another token
  CHECK(r.log().empty());
  t.ApplyHandoff("x", "t2", /*give=*/false);
  CHECK(r.log() == std::vector<std::string>{"free x"});
}

TEST_CASE("a take that arrives before its give cancels it in advance",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.AddLocalRef("x", kSelf);
  t.ApplyHandoff("x", "t1", /*give=*/false);
  t.ApplyHandoff("x", "t1", /*give=*/true);
  t.RemoveLocalRef("x");
  CHECK(r.log() == std::vector<std::string>{"free x"});
}

TEST_CASE("a caller takes over a ref of another owner after registering as its borrower",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  ResultArrives(t, "y", kOwnerA);
  CHECK(r.log() == std::vector<std::string>{absl::StrCat("add ", kOwnerA, " y"),
                                            absl::StrCat("take ", kOwnerA, " y t1")});
  t.RemoveLocalRef("outer");
  CHECK(r.log().back() == absl::StrCat("remove ", kOwnerA, " y"));
}

TEST_CASE("a result nobody holds any more lets its handed-over refs go at once",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedPending("outer");
  t.AddLocalRef("outer", kSelf);
  t.RemoveLocalRef("outer");  // freed while its task ran
  t.SetValue("outer", Holding({{"y", kOwnerA}}));
  CHECK(r.log() == std::vector<std::string>{"free outer", absl::StrCat("add ", kOwnerA, " y"),
                                            absl::StrCat("take ", kOwnerA, " y t1"),
                                            absl::StrCat("remove ", kOwnerA, " y"), "free outer"});
}

TEST_CASE("refs inside a Put value are held until the value is freed",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("inner", Holding({}));
  t.AddOwnedReady("put", Holding({{"inner", kSelf}, {"y", kOwnerA}}));
  t.AddLocalRef("put", kSelf);
  CHECK(r.log() == std::vector<std::string>{absl::StrCat("add ", kOwnerA, " y")});
  t.RemoveLocalRef("put");
  CHECK(r.log() == std::vector<std::string>{absl::StrCat("add ", kOwnerA, " y"), "free put",
                                            "free inner", absl::StrCat("remove ", kOwnerA, " y")});
}

TEST_CASE("a get that gives up leaves no subscription and no borrowed entry behind",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedPending("mine");
  t.AddLocalRef("mine", kSelf);
  bool fetch = false;
  uint64_t mine = 0;
  uint64_t theirs = 0;
  CHECK(t.GetOrSubscribe(
            "mine", kSelf, [](const ValuePtr&) { FAIL("ran"); }, &fetch, &mine) == nullptr);
  CHECK(t.GetOrSubscribe(
            "theirs", kOwnerA, [](const ValuePtr&) { FAIL("ran"); }, &fetch, &theirs) == nullptr);
  CHECK(fetch);
  CHECK(t.NumSubscriptions() == 2);
  t.Unsubscribe("mine", mine);
  t.Unsubscribe("theirs", theirs);
  CHECK(t.NumSubscriptions() == 0);
  CHECK(t.NumBorrowed() == 0);
  t.SetValue("mine", Holding({}));  // the callback that was dropped does not run
  t.SetValue("theirs", Holding({}));
  CHECK(t.Peek("mine") != nullptr);
}

TEST_CASE("a dead borrower's borrows are released everywhere", "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.AddOwnedReady("y", Holding({}));
  t.AddLocalRef("y", kSelf);
  t.AddBorrower("x", kWorker);
  t.AddBorrower("y", kWorker);
  t.RemoveBorrowerEverywhere(kWorker);
  CHECK(r.log() == std::vector<std::string>{"free x"});
  CHECK(t.Peek("y") != nullptr);
}

TEST_CASE("a handoff whose taker died is dropped, also when it arrives later",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  t.AddOwnedReady("x", Holding({}));
  t.AddOwnedReady("y", Holding({}));
  t.AddBorrower("y", kWorker);  // keeps y while x goes
  t.ApplyHandoff("x", "t1", /*give=*/true, kWorker);
  CHECK(r.log().empty());
  t.RemoveBorrowerEverywhere(kWorker);
  auto freed = r.log();
  std::sort(freed.begin(), freed.end());
  CHECK(freed == std::vector<std::string>{"free x", "free y"});
  t.AddOwnedReady("z", Holding({}));
  t.AddLocalRef("z", kSelf);
  t.ApplyHandoff("z", "t2", /*give=*/true, kWorker);  // arrives after the death
  t.RemoveLocalRef("z");
  CHECK(r.log().back() == "free z");
}

TEST_CASE("an owner's death fails borrowed values that live in its store but keeps inline ones",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  auto stored = std::make_shared<proto::Value>();
  stored->mutable_stored()->set_object_id("s");
  t.AddLocalRef("s", kOwnerA);
  t.SetValue("s", stored);
  t.AddLocalRef("i", kOwnerA);
  t.SetValue("i", Holding({}));
  t.FailBorrowedFrom(kOwnerA, "connection lost");
  REQUIRE(t.Peek("s")->has_error());
  CHECK(t.Peek("s")->error().kind() == proto::ErrorInfo::OWNER_DIED);
  CHECK(t.Peek("i")->data() == "bytes");
}

TEST_CASE("an owned value lost with its node waits for its rebuild or becomes an error",
          "[object_table][ownership]") {
  Recorder r;
  ObjectTable& t = r.table();
  auto stored = std::make_shared<proto::Value>();
  stored->mutable_stored()->set_node_id("n2");
  t.AddOwnedReady("rebuilt", stored);
  t.AddLocalRef("rebuilt", kSelf);
  t.AddOwnedReady("lost", stored);
  t.AddLocalRef("lost", kSelf);
  auto on_n2 = t.OwnedStoredOn("n2");
  std::sort(on_n2.begin(), on_n2.end());
  CHECK(on_n2 == std::vector<std::string>{"lost", "rebuilt"});
  t.ResetValue("rebuilt", nullptr);
  t.ResetValue("lost", MakeErrorValue(proto::ErrorInfo::OBJECT_LOST, "lost with node n2"));
  CHECK(t.Peek("rebuilt") == nullptr);
  CHECK(t.Peek("lost")->error().kind() == proto::ErrorInfo::OBJECT_LOST);
  t.SetValue("rebuilt", Holding({}));
  CHECK(t.Peek("rebuilt")->data() == "bytes");
  CHECK(t.OwnedStoredOn("n2").empty());
}

}  // namespace
}  // namespace lumen::internal
