// The file I/O of a storage node's replicas, around the page cache (O_DIRECT) where the file
// system allows: a chunk written is read again only on a download or a repair, and writing three
// replicas through the page cache cost three kernel copies into fresh pages.
//
//   absl::StatusOr<uint64_t> sum = WriteChunkFile(temp_path, header, data);   // == Checksum(data)
//   absl::StatusOr<ChunkFileRead> read = ReadChunkFile(path, 32, 1 << 20);
//
// A write copies the bytes through an aligned buffer of the calling thread in blocks small
// enough to stay in its cache, each hashed right after it is copied, so that the checksum costs
// no second pass over memory; the kernel takes them from there to the device. A read lands in
// an aligned buffer from a pool that the returned ChunkBytes holds, so that a read needs no fresh
// memory and no copy before the bytes go out. A file system without O_DIRECT (tmpfs) gets
// ordinary I/O.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "dfs/chunk_bytes.h"

namespace lumen::dfs {

// Creates (or truncates) `path` and writes `header` then `data` to it; returns the checksum of
// `data`. The file is complete when this returns OK, not synced (see chunk_store.h). Written
// around the page cache, the file keeps the zeros that pad its end to a whole block.
[[nodiscard]] absl::StatusOr<uint64_t> WriteChunkFile(const std::string& path,
                                                      std::string_view header,
                                                      std::string_view data);

// True if a chunk file of `file_size` bytes can hold `header_size` + `data_size` bytes: exactly
// that many, or that many padded to a whole block by WriteChunkFile.
bool IsChunkFileSize(uint64_t file_size, uint64_t header_size, uint64_t data_size);

struct ChunkFileRead {
  std::string header;     // the first `header_size` bytes
  ChunkBytes data;        // the `data_size` bytes after them
  uint64_t checksum = 0;  // Checksum(data)
  bool complete = false;  // false: the file ended before header_size + data_size bytes
};
// Reads the header and the data of a chunk file. NOT_FOUND if there is no such file.
[[nodiscard]] absl::StatusOr<ChunkFileRead> ReadChunkFile(const std::string& path,
                                                          size_t header_size, size_t data_size);

}  // namespace lumen::dfs
