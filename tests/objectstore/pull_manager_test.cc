#include "objectstore/pull_manager.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lumen::objectstore {
namespace {

constexpr size_t kCapacity = size_t{1} << 20;
constexpr uint64_t kChunk = 1000;
constexpr int kInFlight = 3;
const std::string kSource = "10.0.0.2:4100";

// A source that records requests and answers them only when the test says so, from bytes it
// holds per object.
class FakeSource : public PullManager::ChunkSource {
 public:
  struct Request {
    std::string source;
    std::string id;
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  void RequestChunk(const std::string& source, const std::string& id, uint64_t offset,
                    uint64_t length) override {
    requests.push_back({source, id, offset, length});
    ++total_requests;
    max_outstanding = std::max(max_outstanding, requests.size());
  }

  // Answers the oldest request from `objects`; false if none is queued.
  bool AnswerOne(PullManager& pulls) {
    if (requests.empty()) return false;
    const Request request = requests.front();
    requests.pop_front();
    const std::string& bytes = objects.at(request.id);
    // As the data plane does: the answer's bytes go where the manager says, then it hears.
    if (char* at = pulls.ChunkDestination(request.id, request.offset, request.length)) {
      std::memcpy(at, bytes.data() + request.offset, request.length);
      pulls.OnChunkWritten(request.id, request.offset, request.length);
    }
    return true;
  }
  void AnswerAll(PullManager& pulls) {
    while (AnswerOne(pulls)) {
    }
  }

  std::map<std::string, std::string> objects;
  std::deque<Request> requests;
  size_t max_outstanding = 0;
  size_t total_requests = 0;
};

std::string Pattern(size_t size, char seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(seed + static_cast<char>(i % 97));
  return bytes;
}

class Fixture {
 public:
  Fixture() {
    static std::atomic<int> counter{0};
    name_ = absl::StrCat("lumen_pull_test_", getpid(), "_", counter++);
    auto region = ShmRegion::Create(name_, kCapacity);
    REQUIRE(region.ok());
    store_ = std::make_unique<ObjectStore>(*std::move(region));
    PullManager::Options options;
    options.chunk_bytes = kChunk;
    options.max_chunks_in_flight = kInFlight;
    options.create_timeout = absl::ZeroDuration();
    pulls_ = std::make_unique<PullManager>(*store_, source_, options);
  }
  ~Fixture() { (void)ShmRegion::Unlink(name_); }

  // The store's bytes of sealed object `id`, or nullopt.
  std::optional<std::string> Read(const std::string& id) {
    auto location = store_->Get(id, absl::ZeroDuration());
    if (!location.ok()) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(store_->region().data() + location->offset),
                       location->size);
  }

  ObjectStore& store() { return *store_; }
  PullManager& pulls() { return *pulls_; }
  FakeSource& source() { return source_; }

 private:
  std::string name_;
  std::unique_ptr<ObjectStore> store_;
  FakeSource source_;
  std::unique_ptr<PullManager> pulls_;
};

// Records what a pull's callback was told.
struct Outcome {
  int calls = 0;
  absl::Status status;
  PullManager::Done Callback() {
    return [this](const absl::Status& s) {
      ++calls;
      status = s;
    };
  }
};

}  // namespace

TEST_CASE("a pull moves an object in chunks with a bounded number in flight",
          "[objectstore][pull]") {
  Fixture f;
  const std::string bytes = Pattern(10 * kChunk + 123, 'a');
  f.source().objects["obj"] = bytes;
  Outcome outcome;
  f.pulls().Pull("obj", bytes.size(), kSource, outcome.Callback());
  CHECK(f.source().requests.size() == static_cast<size_t>(kInFlight));
  CHECK(f.source().requests.front().source == kSource);
  CHECK(outcome.calls == 0);
  // Not readable before the last byte arrives.
  f.source().AnswerOne(f.pulls());
  CHECK_FALSE(f.Read("obj").has_value());
  f.source().AnswerAll(f.pulls());
  CHECK(outcome.calls == 1);
  CHECK(outcome.status.ok());
  CHECK(f.source().max_outstanding == static_cast<size_t>(kInFlight));
  CHECK(f.source().total_requests == 11);
  CHECK(f.Read("obj") == bytes);
  CHECK(f.pulls().stats().bytes == bytes.size());
  CHECK(f.pulls().in_flight() == 0);
}

TEST_CASE("concurrent pulls of one object are merged into one transfer", "[objectstore][pull]") {
  Fixture f;
  const std::string bytes = Pattern(5 * kChunk, 'k');
  f.source().objects["obj"] = bytes;
  Outcome first;
  Outcome second;
  Outcome third;
  f.pulls().Pull("obj", bytes.size(), kSource, first.Callback());
  f.pulls().Pull("obj", bytes.size(), kSource, second.Callback());
  f.pulls().Pull("obj", bytes.size(), kSource, third.Callback());
  f.source().AnswerAll(f.pulls());
  CHECK(first.status.ok());
  CHECK(second.status.ok());
  CHECK(third.status.ok());
  CHECK(first.calls + second.calls + third.calls == 3);
  // Each chunk was asked for once.
  CHECK(f.source().total_requests == 5);
  CHECK(f.pulls().stats().started == 1);
  CHECK(f.pulls().stats().merged == 2);
  CHECK(f.Read("obj") == bytes);

  SECTION("a pull of an object already here needs no transfer") {
    Outcome again;
    f.pulls().Pull("obj", bytes.size(), kSource, again.Callback());
    CHECK(again.calls == 1);
    CHECK(again.status.ok());
    CHECK(f.source().total_requests == 5);
  }
}

TEST_CASE("a pull whose source lost the object fails every waiter and frees its room",
          "[objectstore][pull]") {
  Fixture f;
  Outcome first;
  Outcome second;
  f.pulls().Pull("obj", 4 * kChunk, kSource, first.Callback());
  f.pulls().Pull("obj", 4 * kChunk, kSource, second.Callback());
  CHECK(f.store().Stats().used > 0);
  f.pulls().OnChunkError("obj", absl::NotFoundError("released by its owner"));
  CHECK(absl::IsNotFound(first.status));
  CHECK(absl::IsNotFound(second.status));
  CHECK(f.store().Stats().used == 0);
  CHECK(f.store().Stats().num_objects == 0);
  // Answers that arrive after the failure are ignored.
  f.source().objects["obj"] = Pattern(4 * kChunk, 'z');
  f.source().AnswerAll(f.pulls());
  CHECK(f.store().Stats().num_objects == 0);
  CHECK(first.calls == 1);
}

TEST_CASE("a pull fails when its source goes away, and only the pulls from that source",
          "[objectstore][pull]") {
  Fixture f;
  f.source().objects["here"] = Pattern(2 * kChunk, 'h');
  Outcome lost;
  Outcome other;
  f.pulls().Pull("gone", 3 * kChunk, kSource, lost.Callback());
  f.pulls().Pull("here", 2 * kChunk, "10.0.0.3:4100", other.Callback());
  f.pulls().OnSourceLost(kSource, "connection reset");
  CHECK(absl::IsUnavailable(lost.status));
  CHECK(other.calls == 0);
  // Answer only the requests for "here".
  while (!f.source().requests.empty()) {
    if (f.source().requests.front().id == "here") {
      f.source().AnswerOne(f.pulls());
    } else {
      f.source().requests.pop_front();
    }
  }
  CHECK(other.status.ok());
  CHECK(other.calls == 1);
}

TEST_CASE("a chunk that no request asked for fails the transfer", "[objectstore][pull]") {
  Fixture f;
  Outcome outcome;
  f.pulls().Pull("obj", 3 * kChunk, kSource, outcome.Callback());
  CHECK(f.pulls().ChunkDestination("obj", 7, kChunk) == nullptr);
  CHECK(absl::IsDataLoss(outcome.status));
  CHECK(f.store().Stats().num_objects == 0);
}

TEST_CASE("an object larger than the store fails its pull with a clear error",
          "[objectstore][pull]") {
  Fixture f;
  Outcome outcome;
  f.pulls().Pull("huge", 2 * kCapacity, kSource, outcome.Callback());
  CHECK(outcome.calls == 1);
  CHECK(absl::IsInvalidArgument(outcome.status));
  CHECK_THAT(std::string(outcome.status.message()),
             Catch::Matchers::Contains("larger than the object store's capacity"));
  CHECK(f.source().total_requests == 0);
}

}  // namespace lumen::objectstore
