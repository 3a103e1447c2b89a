// Checksums of chunks and artifacts: XXH3, 64 bits (xxHash).
//
//   uint64_t sum = dfs::Checksum(data.data(), data.size());
//   dfs::ChecksumStream whole;  whole.Update(part1);  whole.Update(part2);  whole.Digest();
//
// ChecksumStream is not thread-safe; Checksum is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

struct XXH3_state_s;

namespace lumen::dfs {

uint64_t Checksum(const char* data, size_t size);
inline uint64_t Checksum(std::string_view data) { return Checksum(data.data(), data.size()); }

// The checksum of a sequence of pieces, equal to Checksum of their concatenation.
class ChecksumStream {
 public:
  ChecksumStream();
  ~ChecksumStream();
  ChecksumStream(const ChecksumStream&) = delete;
  ChecksumStream& operator=(const ChecksumStream&) = delete;

  void Update(const char* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  uint64_t Digest() const;

 private:
  XXH3_state_s* state_;
};

}  // namespace lumen::dfs
