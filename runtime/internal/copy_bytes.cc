#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "lumen/internal/serialization.h"

namespace lumen::internal {
namespace {

size_t Cores() {
  static const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  return cores;
}

// Runs part(begin, size) over [0, n) split into `parts` pieces of whole cache lines, the first
// on this thread and the others on helper threads.
template <typename Part>
void RunInParts(size_t n, size_t parts, const Part& part) {
  const size_t each = (n / parts) & ~size_t{63};
  std::vector<std::thread> helpers;
  helpers.reserve(parts - 1);
  for (size_t i = 1; i < parts; ++i) {
    const size_t begin = i * each;
    const size_t size = i + 1 == parts ? n - begin : each;
    try {
      helpers.emplace_back([&part, begin, size] { part(begin, size); });
    } catch (const std::system_error&) {  // no thread to be had: do this part here
      part(begin, size);
    }
  }
  part(0, each);
  for (auto& helper : helpers) helper.join();
}

// Touches every page of [begin, end) without changing its bytes: for kernels without
// MADV_POPULATE_WRITE.
void TouchPages(uint8_t* begin, uint8_t* end, size_t page) {
  for (volatile uint8_t* p = begin; p < end; p += page) *p = *p;
}

}  // namespace

void ParallelCopy(char* dst, const char* src, size_t n) {
  const auto parts = std::min<size_t>({4, Cores(), n >> 22});  // at least 4 MiB each
  if (parts <= 1) {
    std::memcpy(dst, src, n);
    return;
  }
  RunInParts(n, parts, [dst, src](size_t begin, size_t size) {
    std::memcpy(dst + begin, src + begin, size);
  });
}

void PrefaultForWrite(void* data, size_t n) {
  static const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  constexpr size_t kHugePage = size_t{2} << 20;
  auto* bytes = static_cast<uint8_t*>(data);
  const auto address = reinterpret_cast<uintptr_t>(data);
  // The bytes to skip from `data` up to the next multiple of `unit`.
  auto up_to = [address](size_t unit) { return (unit - address % unit) % unit; };
  // Only whole pages inside the range: the neighbours are someone else's.
  const size_t head = up_to(page);
  if (n < head + page) return;
  const size_t length = (n - head) / page * page;
  uint8_t* const first = bytes + head;
  const size_t huge_head = up_to(kHugePage);
  if (n >= huge_head + kHugePage) {
    // A hint: one fault per 2 MiB instead of per page. Errors only cost speed.
    (void)madvise(bytes + huge_head, (n - huge_head) / kHugePage * kHugePage, MADV_HUGEPAGE);
  }
  const auto parts = std::min<size_t>({4, Cores(), length >> 24});  // at least 16 MiB each
  auto populate = [first](size_t begin, size_t size) {
    // Part boundaries are cache-line multiples; madvise needs pages.
    const size_t aligned = (begin + page - 1) / page * page;
    const size_t end = begin + size;
    if (end <= aligned) return;
    if (madvise(first + aligned, end - aligned, MADV_POPULATE_WRITE) != 0) {
      TouchPages(first + aligned, first + end, page);
    }
  };
  if (parts <= 1) {
    populate(0, length);
  } else {
    RunInParts(length, parts, populate);
  }
}

}  // namespace lumen::internal
