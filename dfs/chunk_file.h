// The file I/O of a storage node's replicas: one pass over a chunk's bytes that moves them and
// computes their checksum at once, around the page cache (O_DIRECT) where the file system allows.
//
//   absl::StatusOr<uint64_t> sum = WriteChunkFile(temp_path, header, data);   // == Checksum(data)
//   absl::StatusOr<ChunkFileRead> read = ReadChunkFile(path, 32, 1 << 20);
//
// The bytes go through an aligned buffer of the calling thread in blocks small enough to stay in
// its cache: each block is copied, then hashed while it is still there, so a write or a read costs
// one copy and the checksum almost nothing more, and the kernel moves the bytes between that
// buffer and the device without copying them into the page cache (a chunk written is read again
// only on a download or a repair, and writing three replicas through the page cache cost three
// kernel copies into fresh pages). A file system without O_DIRECT (tmpfs) gets ordinary I/O.
//
// Thread-safe: the buffers are per thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lumen::dfs {

// Creates (or truncates) `path` and writes `header` then `data` to it; returns the checksum of
// `data`. The file is complete when this returns OK, not synced (see chunk_store.h).
[[nodiscard]] absl::StatusOr<uint64_t> WriteChunkFile(const std::string& path,
                                                      std::string_view header,
                                                      std::string_view data);

struct ChunkFileRead {
  std::string header;      // the first `header_size` bytes
  std::vector<char> data;  // the `data_size` bytes after them
  uint64_t checksum = 0;   // Checksum(data)
  bool complete = false;   // false: the file ended before header_size + data_size bytes
};
// Reads the header and the data of a chunk file. NOT_FOUND if there is no such file.
[[nodiscard]] absl::StatusOr<ChunkFileRead> ReadChunkFile(const std::string& path,
                                                          size_t header_size, size_t data_size);

}  // namespace lumen::dfs
