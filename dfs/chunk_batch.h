// Several chunks' bytes returned by one call (StorageNode::ReadChunks): written into the object
// store back to back, straight from each chunk's own buffer (no gathering copy), in exactly
// lumen::Array<char>'s format, so that the reader gets them as one contiguous view in place.
//
//   ChunkBatch out({chunk_a, chunk_b});               // a storage node's answer
//   std::shared_ptr<ChunkBatch> in = lumen::Get(ref);  in->view();  // a's bytes, then b's
//
// Immutable once made; copies share the bytes. Thread-safe to read.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

#include "dfs/chunk_bytes.h"

namespace lumen::dfs {

class ChunkBatch {
 public:
  ChunkBatch() = default;
  explicit ChunkBatch(std::vector<ChunkBytes> parts) : parts_(std::move(parts)) {}

  // The bytes, contiguous: a batch read back from the store has one part; empty otherwise.
  std::string_view view() const {
    if (parts_.size() != 1) return {};
    return parts_[0].view();
  }
  size_t size() const {
    size_t size = 0;
    for (const ChunkBytes& part : parts_) size += part.size();
    return size;
  }

  template <class Archive>
  void save(Archive& archive) const {
    archive(cereal::make_size_tag(static_cast<cereal::size_type>(size())));
    internal::SaveArrayPadding(archive);
    for (const ChunkBytes& part : parts_) archive(cereal::binary_data(part.data(), part.size()));
  }
  template <class Archive>
  void load(Archive& archive) {
    ChunkBytes whole;
    whole.load(archive);
    parts_ = {std::move(whole)};
  }

 private:
  std::vector<ChunkBytes> parts_;
};

}  // namespace lumen::dfs
