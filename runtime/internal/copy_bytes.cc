#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "lumen/internal/serialization.h"

namespace lumen::internal {

void ParallelCopy(char* dst, const char* src, size_t n) {
  static const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const auto parts = std::min<size_t>({4, cores, n >> 22});  // at least 4 MiB each
  if (parts <= 1) {
    std::memcpy(dst, src, n);
    return;
  }
  const size_t part = (n / parts) & ~size_t{63};  // whole cache lines
  std::vector<std::thread> helpers;
  helpers.reserve(parts - 1);
  for (size_t i = 1; i < parts; ++i) {
    const size_t begin = i * part;
    const size_t size = i + 1 == parts ? n - begin : part;
    try {
      helpers.emplace_back([=] { std::memcpy(dst + begin, src + begin, size); });
    } catch (const std::system_error&) {  // no thread to be had: copy this part here
      std::memcpy(dst + begin, src + begin, size);
    }
  }
  std::memcpy(dst, src, part);
  for (auto& helper : helpers) helper.join();
}

}  // namespace lumen::internal
