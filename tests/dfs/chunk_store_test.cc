// A storage node's replicas on disk: checksums on write, read and scrub, reopening, the cache.
#include "dfs/chunk_store.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "dfs/checksum.h"
#include "dfs/chunk_file.h"
#include "tests/temp_dir.h"

namespace lumen::dfs {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<ChunkStore> OpenOrFail(const std::string& dir, uint64_t cache = 0) {
  auto store = ChunkStore::Open(dir, cache);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(*store);
}

// Flips one byte of the replica's data on disk (after the 32-byte header).
void Corrupt(const std::string& dir, const std::string& id, size_t offset = 0) {
  std::fstream file(dir + "/" + id + ".chunk", std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(file.good());
  file.seekg(static_cast<std::streamoff>(32 + offset));
  char c = 0;
  file.get(c);
  file.seekp(static_cast<std::streamoff>(32 + offset));
  file.put(static_cast<char>(c ^ 0x5a));
}

const std::string kId = ChunkId(7, 0);

// The bytes a successful read gave, as text.
std::string Text(const absl::StatusOr<ChunkBytes>& read) {
  INFO(read.status().ToString());
  REQUIRE(read.ok());
  return std::string(read->data(), read->size());
}

}  // namespace

TEST_CASE("a replica written is read back, counted, listed and deleted", "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"));
  const std::string data = "hello, replicas";
  REQUIRE(store->Write(kId, Checksum(data), data).ok());
  CHECK(Text(store->Read(kId)) == data);
  CHECK(store->chunks() == 1);
  CHECK(store->bytes() == data.size());
  const auto inventory = store->Inventory();
  REQUIRE(inventory.size() == 1);
  CHECK(inventory[0].id == kId);
  CHECK(inventory[0].checksum == Checksum(data));
  CHECK(store->Delete(kId));
  CHECK_FALSE(store->Delete(kId));
  CHECK(absl::IsNotFound(store->Read(kId).status()));
  CHECK(store->bytes() == 0);
}

TEST_CASE("a write whose bytes do not match their checksum is refused", "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"));
  const auto status = store->Write(kId, Checksum("other"), "data");
  CHECK(absl::IsDataLoss(status));
  CHECK_THAT(std::string(status.message()), Catch::Contains("arrived damaged"));
  CHECK(store->chunks() == 0);
  CHECK(absl::IsInvalidArgument(store->Write("../../etc/passwd", Checksum("x"), "x")));
}

TEST_CASE("a replica damaged on disk fails its read, is dropped and reported",
          "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"), /*cache=*/0);
  const std::string data(10000, 'd');
  REQUIRE(store->Write(kId, Checksum(data), data).ok());
  Corrupt(dir.Sub("s0"), kId, 5000);
  const auto read = store->Read(kId);
  CHECK(absl::IsDataLoss(read.status()));
  CHECK_THAT(std::string(read.status().message()), Catch::Contains("failed its checksum"));
  CHECK(store->chunks() == 0);
  CHECK_FALSE(fs::exists(dir.Sub("s0") + "/" + kId + ".chunk"));
  CHECK(store->TakeCorrupt() == std::vector<std::string>{kId});
  CHECK(store->TakeCorrupt().empty());
}

TEST_CASE("a scrub finds damaged replicas even when a good copy is cached", "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"), /*cache=*/1 << 20);
  const std::string good = "good replica";
  const std::string bad = "soon damaged replica";
  const std::string bad_id = ChunkId(7, 1);
  REQUIRE(store->Write(kId, Checksum(good), good).ok());
  REQUIRE(store->Write(bad_id, Checksum(bad), bad).ok());
  CHECK(Text(store->Read(bad_id)) == bad);  // now cached
  Corrupt(dir.Sub("s0"), bad_id);
  CHECK(Text(store->Read(bad_id)) == bad);  // from memory
  CHECK(store->Scrub() == std::vector<std::string>{bad_id});
  CHECK(store->chunks() == 1);
  CHECK(store->TakeCorrupt() == std::vector<std::string>{bad_id});
  CHECK(Text(store->Read(kId)) == good);
}

TEST_CASE("a reopened store finds its replicas and drops damaged headers and leftovers",
          "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  const std::string folder = dir.Sub("s0");
  {
    auto store = OpenOrFail(folder);
    for (int i = 0; i < 3; ++i) {
      const std::string data(100 + i, static_cast<char>('a' + i));
      REQUIRE(store->Write(ChunkId(9, i), Checksum(data), data).ok());
    }
  }
  {
    // A damaged header, an interrupted write and a stranger.
    std::fstream file(folder + "/" + ChunkId(9, 2) + ".chunk",
                      std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(3);
    file.put('X');
    std::ofstream(folder + "/." + ChunkId(9, 3) + ".1.2.tmp") << "half";
    std::ofstream(folder + "/notes.txt") << "not mine";
  }
  auto store = OpenOrFail(folder);
  CHECK(store->chunks() == 2);
  CHECK(Text(store->Read(ChunkId(9, 1))) == std::string(101, 'b'));
  CHECK(store->TakeCorrupt() == std::vector<std::string>{ChunkId(9, 2)});
  CHECK_FALSE(fs::exists(folder + "/." + ChunkId(9, 3) + ".1.2.tmp"));
  CHECK(fs::exists(folder + "/notes.txt"));
}

TEST_CASE("a reopened store keeps a replica padded to a whole block and drops one cut short",
          "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  const std::string folder = dir.Sub("s0");
  const std::string data(size_t{1} << 20, 'p');
  {
    auto store = OpenOrFail(folder);
    REQUIRE(store->Write(ChunkId(4, 0), Checksum(data), data).ok());
    REQUIRE(store->Write(ChunkId(4, 1), Checksum(data), data).ok());
  }
  // Exact where the file system has no O_DIRECT, else padded to a whole block.
  const uint64_t size = fs::file_size(folder + "/" + ChunkId(4, 0) + ".chunk");
  CHECK(IsChunkFileSize(size, 32, data.size()));
  CHECK(IsChunkFileSize(32 + data.size(), 32, data.size()));
  CHECK(IsChunkFileSize(32 + data.size() + 4064, 32, data.size()));
  CHECK_FALSE(IsChunkFileSize(32 + data.size() + 1, 32, data.size()));
  fs::resize_file(folder + "/" + ChunkId(4, 1) + ".chunk", 32 + data.size() - 1);

  auto store = OpenOrFail(folder);
  CHECK(Text(store->Read(ChunkId(4, 0))) == data);
  CHECK(store->TakeCorrupt() == std::vector<std::string>{ChunkId(4, 1)});
}

TEST_CASE("the memory cache keeps recently read replicas within its bound", "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"), /*cache=*/2500);
  for (int i = 0; i < 5; ++i) {
    const std::string data(1000, static_cast<char>('a' + i));
    REQUIRE(store->Write(ChunkId(1, i), Checksum(data), data).ok());
  }
  for (int i = 0; i < 5; ++i) REQUIRE(store->Read(ChunkId(1, i)).ok());
  // Older replicas left the cache: damaging them on disk shows on read.
  Corrupt(dir.Sub("s0"), ChunkId(1, 0));
  CHECK(absl::IsDataLoss(store->Read(ChunkId(1, 0)).status()));
  Corrupt(dir.Sub("s0"), ChunkId(1, 4));
  CHECK(store->Read(ChunkId(1, 4)).ok());  // still cached
}

TEST_CASE("purge removes every replica and the folder", "[dfs][chunk_store]") {
  testing::TempDir dir("chunk_store");
  auto store = OpenOrFail(dir.Sub("s0"));
  REQUIRE(store->Write(kId, Checksum("x"), "x").ok());
  REQUIRE(store->Purge().ok());
  CHECK(store->chunks() == 0);
  CHECK_FALSE(fs::exists(dir.Sub("s0")));
}

}  // namespace lumen::dfs
