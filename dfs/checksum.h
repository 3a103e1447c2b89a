// Checksums of chunks and artifacts: XXH3, 64 bits (xxHash), on the widest vector unit there is.
//
//   uint64_t sum = dfs::Checksum(data.data(), data.size());
//   dfs::ChecksumStream whole;  whole.Update(part1);  whole.Update(part2);  whole.Digest();
//   uint64_t chunk = dfs::ChecksumAlso(part3, whole);  // == Checksum(part3); whole has it too
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
  // A copy goes on from the same point, independently.
  ChecksumStream(const ChecksumStream& other);
  ChecksumStream& operator=(const ChecksumStream& other);

  void Update(const char* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  uint64_t Digest() const;

 private:
  XXH3_state_s* state_;
};

// Checksum(data), feeding `data` to `also` in the same pass over memory: block by block, each
// hashed twice while it is in the cache.
uint64_t ChecksumAlso(std::string_view data, ChecksumStream& also);

}  // namespace lumen::dfs
