#include "dfs/checksum.h"

#include <xxhash.h>

namespace lumen::dfs {

uint64_t Checksum(const char* data, size_t size) { return XXH3_64bits(data, size); }

ChecksumStream::ChecksumStream() : state_(XXH3_createState()) { XXH3_64bits_reset(state_); }

ChecksumStream::~ChecksumStream() { XXH3_freeState(state_); }

void ChecksumStream::Update(const char* data, size_t size) {
  XXH3_64bits_update(state_, data, size);
}

uint64_t ChecksumStream::Digest() const { return XXH3_64bits_digest(state_); }

}  // namespace lumen::dfs
