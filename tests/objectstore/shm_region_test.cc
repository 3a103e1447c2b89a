#include "objectstore/shm_region.h"

#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace lumen::objectstore {
namespace {

// A region name unique to this process and test, unlinked when the test ends.
class ScopedName {
 public:
  ScopedName() {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_shm_test_", getpid(), "_", counter++);
  }
  ~ScopedName() { (void)ShmRegion::Unlink(name_); }
  const std::string& get() const { return name_; }

 private:
  std::string name_;
};

TEST_CASE("two mappings of one region see the same bytes") {
  ScopedName name;
  auto created = ShmRegion::Create(name.get(), 1 << 20);
  REQUIRE(created.ok());
  auto opened = ShmRegion::Open(name.get());
  REQUIRE(opened.ok());
  REQUIRE((*opened)->size() == (1 << 20));
  CHECK((*opened)->name() == "/" + name.get());

  std::memcpy((*created)->data() + 12345, "hello", 5);
  CHECK(std::memcmp((*opened)->data() + 12345, "hello", 5) == 0);
  (*opened)->data()[(1 << 20) - 1] = 0x7f;
  CHECK((*created)->data()[(1 << 20) - 1] == 0x7f);
}

TEST_CASE("a new region reads as zeros") {
  ScopedName name;
  constexpr size_t kSize = 12305;  // Not a whole number of pages.
  auto region = ShmRegion::Create(name.get(), kSize);
  REQUIRE(region.ok());
  REQUIRE((*region)->size() == kSize);
  for (size_t i = 0; i < (*region)->size(); ++i) REQUIRE((*region)->data()[i] == 0);
}

TEST_CASE("another process writes into the region through its own mapping") {
  ScopedName name;
  auto region = ShmRegion::Create(name.get(), size_t{64} << 10);
  REQUIRE(region.ok());
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto mapped = ShmRegion::Open(name.get());
    if (!mapped.ok()) _exit(1);
    (*mapped)->Prefault(4096, 8192);
    std::memcpy((*mapped)->data() + 4096, "from the child", 14);
    _exit(0);
  }
  int wstatus = 0;
  REQUIRE(waitpid(child, &wstatus, 0) == child);
  REQUIRE(WIFEXITED(wstatus));
  REQUIRE(WEXITSTATUS(wstatus) == 0);
  CHECK(std::memcmp((*region)->data() + 4096, "from the child", 14) == 0);
}

TEST_CASE("creating a region whose name exists fails with ALREADY_EXISTS") {
  ScopedName name;
  auto first = ShmRegion::Create(name.get(), 4096);
  REQUIRE(first.ok());
  auto second = ShmRegion::Create("/" + name.get(), 4096);
  CHECK(second.status().code() == absl::StatusCode::kAlreadyExists);
  // The failed attempt must not remove the existing region.
  CHECK(ShmRegion::Open(name.get()).ok());
}

TEST_CASE("opening a missing region fails with NOT_FOUND") {
  ScopedName name;
  CHECK(ShmRegion::Open(name.get()).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("destroying a region keeps its name and unlinking twice is fine") {
  ScopedName name;
  {
    auto region = ShmRegion::Create(name.get(), 4096);
    REQUIRE(region.ok());
    (*region)->data()[0] = 42;
  }
  auto reopened = ShmRegion::Open(name.get());
  REQUIRE(reopened.ok());
  CHECK((*reopened)->data()[0] == 42);

  CHECK(ShmRegion::Unlink(name.get()).ok());
  CHECK(ShmRegion::Unlink(name.get()).ok());
  CHECK(ShmRegion::Open(name.get()).status().code() == absl::StatusCode::kNotFound);
  // An existing mapping outlives the name.
  CHECK((*reopened)->data()[0] == 42);
}

TEST_CASE("bad names and size zero are rejected with INVALID_ARGUMENT") {
  ScopedName name;
  CHECK(ShmRegion::Create(name.get(), 0).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ShmRegion::Create("", 4096).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ShmRegion::Create("/", 4096).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ShmRegion::Create("a/b", 4096).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ShmRegion::Open("a/b").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ShmRegion::Open(name.get()).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a region larger than /dev/shm fails with RESOURCE_EXHAUSTED and leaves nothing") {
  struct statvfs fs;
  REQUIRE(statvfs("/dev/shm", &fs) == 0);
  if (fs.f_blocks == 0) return;  // An unlimited tmpfs would try to back the request with RAM.
  const size_t too_big = static_cast<size_t>(fs.f_blocks) * fs.f_frsize * 2;
  ScopedName name;
  auto region = ShmRegion::Create(name.get(), too_big);
  CHECK(region.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(ShmRegion::Open(name.get()).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("prefaulting any range, even past the end, is harmless") {
  ScopedName name;
  auto region = ShmRegion::Create(name.get(), 10000);
  REQUIRE(region.ok());
  (*region)->Prefault(0, 10000);
  (*region)->Prefault(5000, 1 << 30);
  (*region)->Prefault(1 << 30, 10);
  (*region)->Prefault(0, 0);
  (*region)->data()[9999] = 1;
  CHECK((*region)->data()[9999] == 1);
}

TEST_CASE("regions whose creator died are removed, those of a live creator stay") {
  ScopedName live;
  ScopedName abandoned;
  auto region = ShmRegion::Create(live.get(), 1 << 20);
  REQUIRE(region.ok());
  // A creator that exits without unlinking, as one killed with SIGKILL would.
  const pid_t child = fork();
  if (child == 0) _exit(ShmRegion::Create(abandoned.get(), 2 << 20).ok() ? 0 : 1);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WEXITSTATUS(status) == 0);
  const std::string prefix = absl::StrCat("lumen_shm_test_", getpid(), "_");

  // The caller's own check comes first: nothing goes while it says the creator lives.
  ShmRegion::Removed removed =
      ShmRegion::RemoveAbandoned(prefix, [](const std::string&) { return false; });
  CHECK(removed.regions == 0);
  CHECK(ShmRegion::Open(abandoned.get()).ok());

  // Told every creator is gone, it still keeps the region whose creator holds its lock.
  removed = ShmRegion::RemoveAbandoned(prefix, [](const std::string&) { return true; });
  CHECK(removed.regions == 1);
  CHECK(removed.bytes == (2u << 20));
  CHECK(absl::IsNotFound(ShmRegion::Open(abandoned.get()).status()));
  CHECK(ShmRegion::Open(live.get()).ok());
}

}  // namespace
}  // namespace lumen::objectstore
