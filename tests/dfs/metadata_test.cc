// The name node's metadata: versions, commits, deletes, aborts and the garbage they leave.
#include "dfs/metadata.h"

#include <catch2/catch.hpp>

namespace lumen::dfs {
namespace {

// A commit of write `write_id` with one chunk per element of `sizes`, each on nodes {0, 1, 2}.
ArtifactInfo Written(const std::string& name, uint64_t write_id, std::vector<uint64_t> sizes) {
  ArtifactInfo artifact;
  artifact.name = name;
  artifact.write_id = write_id;
  for (size_t i = 0; i < sizes.size(); ++i) {
    artifact.chunks.push_back(ChunkInfo{ChunkId(write_id, i), sizes[i], 100 + i, {0, 1, 2}});
    artifact.size += sizes[i];
  }
  return artifact;
}

// Begins and commits a write; returns the garbage of the commit.
std::vector<std::string> WriteVersion(Metadata& meta, const std::string& name, bool update,
                                      std::vector<uint64_t> sizes, uint64_t version) {
  const uint64_t write_id = meta.next_write_id();
  uint64_t size = 0;
  for (uint64_t s : sizes) size += s;
  const LogRecord begin = LogRecord::BeginWrite(write_id, name, update, size, sizes.size(), 1);
  REQUIRE(meta.Check(begin).ok());
  meta.Apply(begin);
  ArtifactInfo artifact = Written(name, write_id, sizes);
  artifact.version = version;
  const LogRecord commit = LogRecord::Commit(artifact, 2);
  INFO(meta.Check(commit).ToString());
  REQUIRE(meta.Check(commit).ok());
  return meta.Apply(commit);
}

}  // namespace

TEST_CASE("an update commits a new version and makes the old chunks garbage", "[dfs][metadata]") {
  Metadata meta;
  CHECK(WriteVersion(meta, "a", false, {10, 5}, 1).empty());
  const uint64_t first_write = meta.Find("a")->write_id;
  CHECK(meta.chunk_count() == 2);
  CHECK(meta.IsLiveChunk(ChunkId(first_write, 1)));
  const auto garbage = WriteVersion(meta, "a", true, {7}, 2);
  CHECK(garbage == std::vector<std::string>{ChunkId(first_write, 0), ChunkId(first_write, 1)});
  CHECK(meta.Find("a")->version == 2);
  CHECK(meta.Find("a")->size == 7);
  CHECK(meta.chunk_count() == 1);
  CHECK_FALSE(meta.IsLiveChunk(ChunkId(first_write, 0)));
  // A retried commit of the replaced write still learns its version.
  CHECK(meta.CommittedWrite(first_write)->version == 1);
}

TEST_CASE("uploads need a new name and updates an existing one", "[dfs][metadata]") {
  Metadata meta;
  WriteVersion(meta, "a", false, {1}, 1);
  CHECK(absl::IsAlreadyExists(meta.Check(LogRecord::BeginWrite(9, "a", false, 1, 1, 0))));
  CHECK(absl::IsNotFound(meta.Check(LogRecord::BeginWrite(9, "b", true, 1, 1, 0))));
  CHECK(absl::IsInvalidArgument(meta.Check(LogRecord::BeginWrite(9, "", false, 1, 1, 0))));
  CHECK(absl::IsNotFound(meta.Check(LogRecord::Delete("b", 0))));
}

TEST_CASE("of two uploads of one name the second commit is refused", "[dfs][metadata]") {
  Metadata meta;
  const LogRecord first = LogRecord::BeginWrite(1, "a", false, 3, 1, 0);
  const LogRecord second = LogRecord::BeginWrite(2, "a", false, 3, 1, 0);
  REQUIRE(meta.Check(first).ok());
  meta.Apply(first);
  REQUIRE(meta.Check(second).ok());
  meta.Apply(second);
  meta.Apply(LogRecord::Commit(Written("a", 1, {3}), 0));
  const absl::Status late = meta.Check(LogRecord::Commit(Written("a", 2, {3}), 0));
  CHECK(absl::IsAlreadyExists(late));
  CHECK(meta.Apply(LogRecord::Abort(2, 0)) == std::vector<std::string>{ChunkId(2, 0)});
  CHECK(meta.pending().empty());
}

TEST_CASE("a commit must match what its write announced", "[dfs][metadata]") {
  Metadata meta;
  meta.Apply(LogRecord::BeginWrite(1, "a", false, 10, 2, 0));
  SECTION("too few chunks") {
    CHECK(absl::IsInvalidArgument(meta.Check(LogRecord::Commit(Written("a", 1, {10}), 0))));
  }
  SECTION("wrong total size") {
    CHECK(absl::IsInvalidArgument(meta.Check(LogRecord::Commit(Written("a", 1, {5, 4}), 0))));
  }
  SECTION("a chunk without replicas") {
    ArtifactInfo artifact = Written("a", 1, {5, 5});
    artifact.chunks[1].replicas.clear();
    CHECK(absl::IsFailedPrecondition(meta.Check(LogRecord::Commit(artifact, 0))));
  }
  SECTION("an unknown write") {
    CHECK(absl::IsFailedPrecondition(meta.Check(LogRecord::Commit(Written("a", 5, {5, 5}), 0))));
  }
  SECTION("the right one") {
    CHECK(meta.Check(LogRecord::Commit(Written("a", 1, {5, 5}), 0)).ok());
  }
}

TEST_CASE("a delete makes an artifact invisible and its chunks garbage", "[dfs][metadata]") {
  Metadata meta;
  WriteVersion(meta, "a", false, {4, 4}, 1);
  const uint64_t write = meta.Find("a")->write_id;
  CHECK(meta.Apply(LogRecord::Delete("a", 0)) ==
        std::vector<std::string>{ChunkId(write, 0), ChunkId(write, 1)});
  CHECK(meta.Find("a") == nullptr);
  CHECK(meta.chunk_count() == 0);
  // The name can be used again, from version 1.
  CHECK(meta.Check(LogRecord::BeginWrite(meta.next_write_id(), "a", false, 1, 1, 0)).ok());
}

TEST_CASE("chunks of writes in progress are live until aborted", "[dfs][metadata]") {
  Metadata meta;
  meta.Apply(LogRecord::BeginWrite(4, "a", false, 10, 2, 0));
  CHECK(meta.IsLiveChunk(ChunkId(4, 1)));
  CHECK_FALSE(meta.IsLiveChunk(ChunkId(4, 2)));
  CHECK_FALSE(meta.IsLiveChunk("not-a-chunk"));
  CHECK(meta.next_write_id() == 5);
  meta.Apply(LogRecord::Abort(4, 0));
  CHECK_FALSE(meta.IsLiveChunk(ChunkId(4, 1)));
}

TEST_CASE("a snapshot restores artifacts, writes in progress and the next write id",
          "[dfs][metadata]") {
  Metadata meta;
  WriteVersion(meta, "a", false, {3}, 1);
  WriteVersion(meta, "b", false, {1, 2}, 1);
  meta.Apply(LogRecord::BeginWrite(meta.next_write_id(), "c", false, 5, 1, 0));
  auto restored = Metadata::FromSnapshot(meta.Snapshot());
  REQUIRE(restored.ok());
  CHECK(restored->artifacts().size() == 2);
  CHECK(restored->Find("b")->chunks.size() == 2);
  CHECK(restored->Find("b")->chunks[1].replicas == std::vector<int>{0, 1, 2});
  CHECK(restored->pending().size() == 1);
  CHECK(restored->next_write_id() == meta.next_write_id());
  CHECK(restored->chunk_count() == 3);
  CHECK(restored->IsLiveChunk(meta.Find("a")->chunks[0].id));
  CHECK(absl::IsDataLoss(Metadata::FromSnapshot("garbage").status()));
}

TEST_CASE("log records survive encoding", "[dfs][metadata]") {
  const LogRecord commit = LogRecord::Commit(Written("x", 3, {1, 2}), 42);
  auto decoded = DecodeRecord(Encode(commit));
  REQUIRE(decoded.ok());
  CHECK(decoded->kind == LogRecord::Kind::kCommit);
  CHECK(decoded->artifact.chunks[1].id == ChunkId(3, 1));
  CHECK(decoded->time_ms == 42);
  CHECK(absl::IsDataLoss(DecodeRecord(std::string("\x01\xff", 2)).status()));
}

}  // namespace lumen::dfs
