// The head's durable tables in SQLite: reads, writes, prefix scans, reopening, bad files.
#include "scheduler/head_store.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<HeadStore> OpenOrFail(const std::string& path) {
  auto store = HeadStore::Open(path);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(*store);
}

std::optional<std::string> GetOrFail(HeadStore& store, std::string_view table,
                                     std::string_view key) {
  auto value = store.Get(table, key);
  INFO(value.status().ToString());
  REQUIRE(value.ok());
  return *value;
}

std::vector<std::string> Keys(HeadStore& store, std::string_view table, std::string_view prefix,
                              std::string_view start_after = "", size_t limit = 0) {
  auto keys = store.ScanKeys(table, prefix, start_after, limit);
  INFO(keys.status().ToString());
  REQUIRE(keys.ok());
  return *keys;
}

}  // namespace

TEST_CASE("a value put into a table is read back, replaced and deleted",
          "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto store = OpenOrFail(dir.Sub("head.db"));
  CHECK(GetOrFail(*store, "t", "k") == std::nullopt);
  REQUIRE(store->Put("t", "k", "one").ok());
  CHECK(GetOrFail(*store, "t", "k") == "one");
  REQUIRE(store->Put("t", "k", "two").ok());
  CHECK(GetOrFail(*store, "t", "k") == "two");
  CHECK(GetOrFail(*store, "other", "k") == std::nullopt);
  CHECK(store->Delete("t", "k").value() == true);
  CHECK(store->Delete("t", "k").value() == false);
  CHECK(GetOrFail(*store, "t", "k") == std::nullopt);
}

TEST_CASE("keys and values are arbitrary bytes, empty ones included", "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto store = OpenOrFail(dir.Sub("head.db"));
  const std::string key("a\0b\xff", 4);
  const std::string value("\0\x01\x02", 3);
  REQUIRE(store->Put("t", key, value).ok());
  REQUIRE(store->Put("t", "", "").ok());
  CHECK(GetOrFail(*store, "t", key) == value);
  CHECK(GetOrFail(*store, "t", "") == std::string());
  CHECK(GetOrFail(*store, "t", "a") == std::nullopt);
}

TEST_CASE("a prefix scan returns the matching keys in byte order, paged",
          "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto store = OpenOrFail(dir.Sub("head.db"));
  for (const std::string& key :
       std::vector<std::string>{"log/2", "log/10", "log/1", "logs", "lof", std::string("\xff", 1),
                                std::string("\xff\xff", 2), std::string("log/\xff", 5)}) {
    REQUIRE(store->Put("t", key, "v" + key).ok());
  }
  REQUIRE(store->Put("u", "log/3", "elsewhere").ok());
  CHECK(Keys(*store, "t", "log/") ==
        std::vector<std::string>{"log/1", "log/10", "log/2", std::string("log/\xff", 5)});
  CHECK(Keys(*store, "t", "log/", "log/10") ==
        std::vector<std::string>{"log/2", std::string("log/\xff", 5)});
  CHECK(Keys(*store, "t", "log/", "", 2) == std::vector<std::string>{"log/1", "log/10"});
  CHECK(Keys(*store, "t", std::string("\xff", 1)) ==
        std::vector<std::string>{std::string("\xff", 1), std::string("\xff\xff", 2)});
  CHECK(Keys(*store, "t", "").size() == 8);
  auto records = store->Scan("t", "log/1");
  REQUIRE(records.ok());
  REQUIRE(records->size() == 2);
  CHECK((*records)[1].key == "log/10");
  CHECK((*records)[1].value == "vlog/10");
}

TEST_CASE("a batch of writes applies as one", "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto store = OpenOrFail(dir.Sub("head.db"));
  REQUIRE(store->Put("actors", "old", "x").ok());
  REQUIRE(store
              ->Write({{"actors", "a", std::string("spec")},
                       {"names", "counter", std::string("a")},
                       {"actors", "old", std::nullopt}})
              .ok());
  CHECK(GetOrFail(*store, "actors", "a") == "spec");
  CHECK(GetOrFail(*store, "names", "counter") == "a");
  CHECK(GetOrFail(*store, "actors", "old") == std::nullopt);
}

TEST_CASE("what was written is there after the store is closed and opened again",
          "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  {
    auto store = OpenOrFail(dir.Sub("head.db"));
    for (int i = 0; i < 100; ++i) {
      REQUIRE(
          store->Put(HeadStore::KvTable("dfs"), absl::StrCat("key", i), std::string(i, 'x')).ok());
    }
    REQUIRE(store->Delete(HeadStore::KvTable("dfs"), "key7").value());
  }
  auto store = OpenOrFail(dir.Sub("head.db"));
  CHECK(Keys(*store, HeadStore::KvTable("dfs"), "key").size() == 99);
  CHECK(GetOrFail(*store, HeadStore::KvTable("dfs"), "key42") == std::string(42, 'x'));
  CHECK(GetOrFail(*store, HeadStore::KvTable("dfs"), "key7") == std::nullopt);
  CHECK(GetOrFail(*store, HeadStore::KvTable(""), "key42") == std::nullopt);
}

TEST_CASE("a file that is not a database gives a clear error", "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  const std::string path = dir.Sub("head.db");
  {
    std::ofstream out(path);
    out << std::string(8192, 'g');
  }
  auto store = HeadStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()),
             Catch::Contains(path) && Catch::Contains("not a database"));
}

TEST_CASE("a path that cannot be written gives a clear error", "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  {
    std::ofstream out(dir.Sub("plain-file"));
    out << "x";
  }
  for (const std::string& path :
       std::vector<std::string>{dir.Sub("plain-file/head.db"), dir.Sub("missing/head.db")}) {
    auto store = HeadStore::Open(path);
    REQUIRE_FALSE(store.ok());
    CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(store.status().message()),
               Catch::Contains("cannot open the head database " + path));
  }
}

TEST_CASE("a database open in one place cannot be opened a second time",
          "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto first = OpenOrFail(dir.Sub("head.db"));
  REQUIRE(first->Put("t", "k", "v").ok());
  auto second = HeadStore::Open(dir.Sub("head.db"));
  REQUIRE_FALSE(second.ok());
  CHECK_THAT(std::string(second.status().message()), Catch::Contains("another head"));
  first.reset();
  auto third = OpenOrFail(dir.Sub("head.db"));
  CHECK(GetOrFail(*third, "t", "k") == "v");
}

TEST_CASE("writers on several threads each see their own writes", "[scheduler][head_store]") {
  testing::TempDir dir("head_store");
  auto store = OpenOrFail(dir.Sub("head.db"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string key = absl::StrCat(t, "/", i);
        if (!store->Put("t", key, key).ok()) return;
        auto read = store->Get("t", key);
        if (!read.ok() || *read != key) return;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(Keys(*store, "t", "").size() == 200);
}

}  // namespace lumen::scheduler
