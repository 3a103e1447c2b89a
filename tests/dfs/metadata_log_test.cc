// The name node's write-ahead log in a (fake) KV store: replay, checkpoints, damage.
#include "dfs/metadata_log.h"

#include <catch2/catch.hpp>

#include "tests/dfs/fake_kv.h"

namespace lumen::dfs {
namespace {

// Appends and applies the begin and commit of a one-chunk artifact.
void Write(MetadataLog& log, Metadata& meta, const std::string& name, bool update) {
  const uint64_t write_id = meta.next_write_id();
  const LogRecord begin = LogRecord::BeginWrite(write_id, name, update, 1, 1, 0);
  REQUIRE(meta.Check(begin).ok());
  REQUIRE(log.Append(begin).ok());
  meta.Apply(begin);
  ArtifactInfo artifact;
  artifact.name = name;
  artifact.write_id = write_id;
  artifact.size = 1;
  const ArtifactInfo* current = meta.Find(name);
  artifact.version = current == nullptr ? 1 : current->version + 1;
  artifact.chunks.push_back(ChunkInfo{ChunkId(write_id, 0), 1, 7, {0}});
  const LogRecord commit = LogRecord::Commit(artifact, 0);
  REQUIRE(meta.Check(commit).ok());
  REQUIRE(log.Append(commit).ok());
  meta.Apply(commit);
}

}  // namespace

TEST_CASE("a replayed log rebuilds every committed version", "[dfs][metadata_log]") {
  FakeKv kv;
  Metadata meta;
  {
    MetadataLog log(&kv);
    REQUIRE(log.Recover().ok());
    Write(log, meta, "a", false);
    Write(log, meta, "b", false);
    Write(log, meta, "a", true);
    const LogRecord del = LogRecord::Delete("b", 0);
    REQUIRE(log.Append(del).ok());
    meta.Apply(del);
  }
  MetadataLog again(&kv);
  auto replayed = again.Recover();
  REQUIRE(replayed.ok());
  CHECK(replayed->artifacts().size() == 1);
  CHECK(replayed->Find("a")->version == 2);
  CHECK(replayed->Find("b") == nullptr);
  CHECK(replayed->next_write_id() == meta.next_write_id());
  CHECK(again.next_seq() == 8);
}

TEST_CASE("a checkpoint replaces the records it covers and replay goes on after it",
          "[dfs][metadata_log]") {
  FakeKv kv;
  Metadata meta;
  MetadataLog log(&kv, /*checkpoint_every=*/4);
  REQUIRE(log.Recover().ok());
  Write(log, meta, "a", false);
  Write(log, meta, "b", false);
  auto covered = log.MaybeCheckpoint(meta);
  REQUIRE(covered.ok());
  CHECK(*covered == 4);
  // The truncation has not run yet: replay skips what the checkpoint covers.
  Write(log, meta, "c", false);
  {
    auto replayed = MetadataLog(&kv).Recover(/*read_only=*/true);
    REQUIRE(replayed.ok());
    CHECK(replayed->artifacts().size() == 3);
    CHECK(kv.data().count(LogKey(1)) == 1);  // read-only replay deleted nothing
  }
  REQUIRE(log.Truncate(*covered).ok());
  CHECK(kv.data().count(LogKey(4)) == 0);
  CHECK(kv.data().count(LogKey(5)) == 1);
  MetadataLog again(&kv);
  auto replayed = again.Recover();
  REQUIRE(replayed.ok());
  CHECK(replayed->artifacts().size() == 3);
  CHECK(replayed->Find("c")->version == 1);
  CHECK(again.next_seq() == 7);
}

TEST_CASE("an interrupted truncation is finished by the next recovery", "[dfs][metadata_log]") {
  FakeKv kv;
  Metadata meta;
  MetadataLog log(&kv, /*checkpoint_every=*/1);
  REQUIRE(log.Recover().ok());
  Write(log, meta, "a", false);
  auto covered = log.MaybeCheckpoint(meta);
  REQUIRE(covered.ok());
  MetadataLog again(&kv);
  auto replayed = again.Recover();
  REQUIRE(replayed.ok());
  CHECK(replayed->Find("a")->version == 1);
  CHECK(kv.data().count(LogKey(1)) == 0);
  CHECK(kv.data().count(LogKey(2)) == 0);
}

TEST_CASE("a damaged log record stops recovery with DATA_LOSS naming it", "[dfs][metadata_log]") {
  FakeKv kv;
  Metadata meta;
  MetadataLog log(&kv);
  REQUIRE(log.Recover().ok());
  Write(log, meta, "a", false);
  kv.Set(LogKey(2), "\x01garbage");
  auto replayed = MetadataLog(&kv).Recover();
  CHECK(absl::IsDataLoss(replayed.status()));
  CHECK_THAT(std::string(replayed.status().message()), Catch::Contains(LogKey(2)));
}

TEST_CASE("an append the KV store refuses is an error and changes nothing", "[dfs][metadata_log]") {
  FakeKv kv;
  MetadataLog log(&kv);
  REQUIRE(log.Recover().ok());
  kv.SetFailing(true);
  const absl::Status status = log.Append(LogRecord::BeginWrite(1, "a", false, 1, 1, 0));
  CHECK(absl::IsUnavailable(status));
  CHECK_THAT(std::string(status.message()), Catch::Contains("cannot write the DFS log"));
  CHECK(log.next_seq() == 1);
  kv.SetFailing(false);
  CHECK(kv.data().empty());
}

TEST_CASE("clearing the log removes every record and the checkpoint", "[dfs][metadata_log]") {
  FakeKv kv;
  Metadata meta;
  MetadataLog log(&kv, 2);
  REQUIRE(log.Recover().ok());
  Write(log, meta, "a", false);
  REQUIRE(log.MaybeCheckpoint(meta).ok());
  Write(log, meta, "b", false);
  REQUIRE(log.Clear().ok());
  CHECK(kv.data().empty());
  auto replayed = MetadataLog(&kv).Recover();
  REQUIRE(replayed.ok());
  CHECK(replayed->artifacts().empty());
}

}  // namespace lumen::dfs
