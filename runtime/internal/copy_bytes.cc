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
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  constexpr size_t kHugePage = size_t{2} << 20;
  const auto start = reinterpret_cast<uintptr_t>(data);
  // Only whole pages inside the range: the neighbours are someone else's.
  const uintptr_t first = (start + page - 1) / page * page;
  const uintptr_t last = (start + n) / page * page;
  if (last <= first) return;
  const uintptr_t huge_first = (first + kHugePage - 1) / kHugePage * kHugePage;
  const uintptr_t huge_last = last / kHugePage * kHugePage;
  if (huge_last > huge_first) {
    // A hint: one fault per 2 MiB instead of per page. Errors only cost speed.
    (void)madvise(reinterpret_cast<void*>(huge_first), huge_last - huge_first, MADV_HUGEPAGE);
  }
  auto* base = reinterpret_cast<uint8_t*>(first);
  const size_t bytes = last - first;
  const auto parts = std::min<size_t>({4, Cores(), bytes >> 24});  // at least 16 MiB each
  auto populate = [base](size_t begin, size_t size) {
    // Part boundaries are cache-line multiples; madvise needs pages.
    const size_t aligned = (begin + page - 1) / page * page;
    const size_t end = begin + size;
    if (end <= aligned) return;
    if (madvise(base + aligned, end - aligned, MADV_POPULATE_WRITE) != 0) {
      TouchPages(base + aligned, base + end, page);
    }
  };
  if (parts <= 1) {
    populate(0, bytes);
  } else {
    RunInParts(bytes, parts, populate);
  }
}

}  // namespace lumen::internal
