#include "objectstore/allocator.h"

#include <iterator>
#include <limits>

namespace lumen::objectstore {

size_t Allocator::BlockSize(size_t size) {
  constexpr size_t kMax = std::numeric_limits<size_t>::max() / kAlignment * kAlignment;
  if (size > kMax) return kMax;
  if (size == 0) return kAlignment;
  return (size + kAlignment - 1) / kAlignment * kAlignment;
}

Allocator::Allocator(size_t capacity) : capacity_(capacity / kAlignment * kAlignment) {
  if (capacity_ > 0) InsertFree(0, capacity_);
}

std::optional<size_t> Allocator::Allocate(size_t size) {
  if (size > capacity_) return std::nullopt;
  const size_t block = BlockSize(size);
  auto best = free_by_size_.lower_bound({block, 0});
  if (best == free_by_size_.end()) return std::nullopt;
  const auto [free_size, offset] = *best;
  EraseFree(free_by_offset_.find(offset));
  if (free_size > block) InsertFree(offset + block, free_size - block);
  allocated_.emplace(offset, block);
  used_ += block;
  return offset;
}

bool Allocator::Free(size_t offset) {
  auto it = allocated_.find(offset);
  if (it == allocated_.end()) return false;
  size_t start = offset;
  size_t size = it->second;
  allocated_.erase(it);
  used_ -= size;

  auto next = free_by_offset_.lower_bound(start);
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      EraseFree(prev);
    }
  }
  if (next != free_by_offset_.end() && start + size == next->first) {
    size += next->second;
    EraseFree(next);
  }
  InsertFree(start, size);
  return true;
}

size_t Allocator::largest_free() const {
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

void Allocator::InsertFree(size_t offset, size_t size) {
  free_by_offset_.emplace(offset, size);
  free_by_size_.emplace(size, offset);
}

void Allocator::EraseFree(std::map<size_t, size_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_by_offset_.erase(it);
}

}  // namespace lumen::objectstore
