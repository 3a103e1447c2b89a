// Hands out non-overlapping, 64-byte-aligned byte ranges of an arena [0, capacity).
//
//   Allocator allocator(region->size());
//   std::optional<size_t> offset = allocator.Allocate(object_size);  // nullopt when full
//   ...
//   allocator.Free(*offset);
//
// Best fit over a free list kept sorted by offset, so freeing a block merges it with free
// neighbours and a fully freed arena is again one block. Every block is a multiple of 64 bytes
// (kAlignment); the arena's tail beyond the last multiple of 64 is never used.
// Not thread-safe: the owner (ObjectStore) serializes all calls.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace lumen::objectstore {

class Allocator {
 public:
  static constexpr size_t kAlignment = 64;

  // Bytes a request of `size` occupies: `size` rounded up to kAlignment, at least kAlignment.
  // Saturates instead of wrapping for sizes near SIZE_MAX.
  static size_t BlockSize(size_t size);

  explicit Allocator(size_t capacity);

  // Offset of a fresh block of at least `size` bytes, aligned to kAlignment, or nullopt if no
  // free block is large enough. Size 0 still gets a distinct block.
  std::optional<size_t> Allocate(size_t size);

  // Returns the block at `offset` (as returned by Allocate) to the free list. Returns false and
  // changes nothing if no block starts there.
  bool Free(size_t offset);

  // Bytes in allocated blocks, including rounding.
  size_t used() const { return used_; }
  // Usable bytes: the constructor's capacity rounded down to kAlignment.
  size_t capacity() const { return capacity_; }
  // The largest request that would succeed now, in bytes.
  size_t largest_free() const;
  size_t num_allocations() const { return allocated_.size(); }

 private:
  void InsertFree(size_t offset, size_t size);
  void EraseFree(std::map<size_t, size_t>::iterator it);

  size_t capacity_;
  size_t used_ = 0;
  // Free blocks, offset -> size; never two adjacent ones.
  std::map<size_t, size_t> free_by_offset_;
  // The same free blocks as (size, offset), for best fit and largest_free().
  std::set<std::pair<size_t, size_t>> free_by_size_;
  // Allocated blocks, offset -> size.
  std::map<size_t, size_t> allocated_;
};

}  // namespace lumen::objectstore
