#include "objectstore/allocator.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <vector>

namespace lumen::objectstore {
namespace {

constexpr size_t kKiB = 1024;

TEST_CASE("every allocation is aligned to 64 bytes and blocks never overlap") {
  Allocator allocator(64 * kKiB);
  std::map<size_t, size_t> blocks;  // offset -> requested size
  for (size_t size : {1, 63, 64, 65, 100, 128, 1000, 4095, 0, 7}) {
    std::optional<size_t> offset = allocator.Allocate(size);
    REQUIRE(offset.has_value());
    CHECK(*offset % Allocator::kAlignment == 0);
    blocks.emplace(*offset, size);
  }
  REQUIRE(blocks.size() == 10);
  size_t end = 0;
  for (const auto& [offset, size] : blocks) {
    CHECK(offset >= end);
    end = offset + Allocator::BlockSize(size);
  }
  CHECK(allocator.num_allocations() == 10);
}

TEST_CASE("a zero-byte allocation still gets a distinct 64-byte block") {
  Allocator allocator(1024);
  std::optional<size_t> a = allocator.Allocate(0);
  std::optional<size_t> b = allocator.Allocate(0);
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK(*a != *b);
  CHECK(allocator.used() == 128);
}

TEST_CASE("used bytes count each request rounded up to 64") {
  Allocator allocator(1024);
  REQUIRE(allocator.Allocate(1).has_value());
  REQUIRE(allocator.Allocate(65).has_value());
  CHECK(allocator.used() == 64 + 128);
  CHECK(allocator.largest_free() == 1024 - 64 - 128);
}

TEST_CASE("the usable capacity is rounded down to a multiple of 64") {
  Allocator allocator(1000);
  CHECK(allocator.capacity() == 960);
  CHECK(allocator.largest_free() == 960);
  CHECK_FALSE(allocator.Allocate(961).has_value());
  CHECK(allocator.Allocate(960) == std::optional<size_t>(0));
}

TEST_CASE("freeing neighbours coalesces them so the whole capacity fits again") {
  constexpr size_t kBlock = 1024;
  Allocator allocator(3 * kBlock);
  std::optional<size_t> a = allocator.Allocate(kBlock);
  std::optional<size_t> b = allocator.Allocate(kBlock);
  std::optional<size_t> c = allocator.Allocate(kBlock);
  REQUIRE((a && b && c));
  CHECK(allocator.largest_free() == 0);

  CHECK(allocator.Free(*a));
  CHECK(allocator.Free(*c));
  // B still separates the two free blocks.
  CHECK(allocator.largest_free() == kBlock);
  CHECK_FALSE(allocator.Allocate(2 * kBlock).has_value());

  CHECK(allocator.Free(*b));
  CHECK(allocator.used() == 0);
  CHECK(allocator.num_allocations() == 0);
  CHECK(allocator.largest_free() == 3 * kBlock);
  CHECK(allocator.Allocate(3 * kBlock) == std::optional<size_t>(0));
}

TEST_CASE("a full allocator refuses requests until a block is freed") {
  Allocator allocator(4 * Allocator::kAlignment);
  std::vector<size_t> offsets;
  for (int i = 0; i < 4; ++i) {
    std::optional<size_t> offset = allocator.Allocate(64);
    REQUIRE(offset.has_value());
    offsets.push_back(*offset);
  }
  CHECK(allocator.used() == allocator.capacity());
  CHECK_FALSE(allocator.Allocate(0).has_value());
  CHECK_FALSE(allocator.Allocate(1).has_value());

  REQUIRE(allocator.Free(offsets[2]));
  CHECK(allocator.Allocate(64) == std::optional<size_t>(offsets[2]));
}

TEST_CASE("requests larger than the capacity fail without wrapping around") {
  Allocator allocator(1024);
  CHECK_FALSE(allocator.Allocate(1025).has_value());
  CHECK_FALSE(allocator.Allocate(SIZE_MAX).has_value());
  CHECK(allocator.used() == 0);
}

TEST_CASE("freeing an unknown offset changes nothing and returns false") {
  Allocator allocator(1024);
  std::optional<size_t> a = allocator.Allocate(100);
  REQUIRE(a.has_value());
  CHECK_FALSE(allocator.Free(*a + 64));
  CHECK_FALSE(allocator.Free(4096));
  CHECK(allocator.used() == 128);

  SECTION("including an offset that was already freed") {
    CHECK(allocator.Free(*a));
    CHECK_FALSE(allocator.Free(*a));
    CHECK(allocator.used() == 0);
    CHECK(allocator.largest_free() == 1024);
  }
}

TEST_CASE("after any sequence of allocations and frees, freeing everything restores one block") {
  constexpr size_t kCapacity = 256 * kKiB;
  Allocator allocator(kCapacity);
  std::mt19937 rng(42);
  std::map<size_t, size_t> live;  // offset -> block size
  for (int step = 0; step < 5000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t size = rng() % 5000;
      std::optional<size_t> offset = allocator.Allocate(size);
      if (!offset.has_value()) {
        CHECK(allocator.largest_free() < Allocator::BlockSize(size));
        continue;
      }
      REQUIRE(*offset % Allocator::kAlignment == 0);
      REQUIRE(*offset + Allocator::BlockSize(size) <= kCapacity);
      auto next = live.lower_bound(*offset);
      if (next != live.end()) REQUIRE(*offset + Allocator::BlockSize(size) <= next->first);
      if (next != live.begin())
        REQUIRE(std::prev(next)->first + std::prev(next)->second <= *offset);
      live.emplace(*offset, Allocator::BlockSize(size));
    } else {
      auto victim = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      REQUIRE(allocator.Free(victim->first));
      live.erase(victim);
    }
    size_t expected_used = 0;
    for (const auto& [offset, size] : live) expected_used += size;
    REQUIRE(allocator.used() == expected_used);
  }
  for (const auto& [offset, size] : live) REQUIRE(allocator.Free(offset));
  CHECK(allocator.used() == 0);
  CHECK(allocator.largest_free() == kCapacity);
}

}  // namespace
}  // namespace lumen::objectstore
