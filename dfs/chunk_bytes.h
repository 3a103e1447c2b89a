// A chunk's bytes as they travel between clients and storage nodes: written in exactly
// lumen::Array<char>'s format (so read in place from the object store, like an Array), but
// written from any memory that a keeper holds, such as a storage node's pooled read buffer or a
// client's reused upload buffer, so that neither needs a fresh vector per chunk.
//
//   ChunkBytes out(buffer.data(), n, keeper);     // keeper owns buffer while `out` lives
//   ObjectRef<ChunkBytes> ref = lumen::Put(out);  // one copy, into the store
//   std::shared_ptr<ChunkBytes> in = lumen::Get(ref);  in->view();  // no copy
//
// Immutable once made; copies share the bytes. Thread-safe to read.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "lumen/array.h"

namespace lumen::dfs {

class ChunkBytes {
 public:
  ChunkBytes() = default;
  // `keeper` keeps [data, data + size) alive and unchanged while any copy of this lives.
  ChunkBytes(const char* data, size_t size, std::shared_ptr<const void> keeper)
      : data_(data), size_(size), keeper_(std::move(keeper)) {}
  explicit ChunkBytes(Array<char> array) {
    auto kept = std::make_shared<const Array<char>>(std::move(array));
    data_ = kept->data();
    size_ = kept->size();
    keeper_ = std::move(kept);
  }
  explicit ChunkBytes(std::vector<char> bytes) : ChunkBytes(Array<char>(std::move(bytes))) {}

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }

  template <class Archive>
  void save(Archive& archive) const {
    archive(cereal::make_size_tag(static_cast<cereal::size_type>(size_)));
    internal::SaveArrayPadding(archive);
    archive(cereal::binary_data(data_, size_));
  }
  template <class Archive>
  void load(Archive& archive) {
    Array<char> array;
    array.load(archive);
    *this = ChunkBytes(std::move(array));
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const void> keeper_;
};

}  // namespace lumen::dfs
