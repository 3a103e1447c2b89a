// lumen::Array<T>: an immutable array of plain values that Get and task arguments read in place
// from the node's shared-memory store instead of copying, like numpy arrays in Ray.
//
//   std::vector<double> values(50'000'000, 0.5);
//   lumen::ObjectRef<lumen::Array<double>> ref =
//   lumen::Put(lumen::Array<double>(std::move(values))); std::shared_ptr<lumen::Array<double>>
//   weights = lumen::Get(ref);  // no copy of the elements double sum =
//   std::accumulate(weights->begin(), weights->end(), 0.0);
//
// An Array read from an object in the store points into the store's shared mapping and keeps that
// object pinned (never freed, evicted or overwritten) while the Array or any copy of it lives,
// even after every ObjectRef to the object is gone. Arrays nest: a std::map<std::string,
// lumen::Array<double>> or a user struct holding Arrays is read in place too. Small values
// (under 100 KiB, which travel inline) and values read outside Lumen own a copy instead.
//
// Copying an Array is cheap: copies share the elements. Elements are read-only. Thread-safe: any
// number of threads may read an Array and its copies. Stay within lumen::Init and
// lumen::Shutdown: after Shutdown the store may reuse the memory of an Array read from it.
#pragma once

#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/internal/serialization.h"

namespace lumen {

namespace internal {

// Elements of an Array start at a multiple of this many bytes from the start of a value, which
// is 64-byte aligned in the store: aligned for any T and for SIMD loads.
inline constexpr size_t kArrayAlignment = 64;

// Writes the padding byte count and the padding that put the next byte on kArrayAlignment
// within a Lumen value; with any other archive the position is unknown and no padding is written.
template <class Archive>
void SaveArrayPadding(Archive& archive) {
  uint8_t padding = 0;
  if constexpr (std::is_base_of_v<cereal::BinaryOutputArchive, Archive>) {
    if (auto* value_archive = dynamic_cast<const ValueOutputArchive*>(&archive)) {
      const size_t after = value_archive->position() + 1;  // past the count byte
      padding = static_cast<uint8_t>((kArrayAlignment - after % kArrayAlignment) % kArrayAlignment);
    }
  }
  archive(padding);
  if (padding > 0) {
    static constexpr char kZeros[kArrayAlignment] = {};
    archive(cereal::binary_data(kZeros, padding));
  }
}

// Reads what SaveArrayPadding wrote.
template <class Archive>
void LoadArrayPadding(Archive& archive) {
  uint8_t padding = 0;
  archive(padding);
  if (padding >= kArrayAlignment) {
    throw cereal::Exception("corrupted lumen::Array: padding of " + std::to_string(padding) +
                            " bytes");
  }
  char skipped[kArrayAlignment];
  archive(cereal::binary_data(skipped, padding));
}

}  // namespace internal

template <typename T>
class Array {
  static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
                    !std::is_pointer_v<T> && !std::is_const_v<T>,
                "lumen::Array<T> holds plain values: T must be trivially copyable, default "
                "constructible and not a pointer (use std::vector for anything else)");

 public:
  using value_type = T;
  using size_type = size_t;
  using difference_type = std::ptrdiff_t;
  using reference = const T&;
  using const_reference = const T&;
  using pointer = const T*;
  using const_pointer = const T*;
  using iterator = const T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<const T*>;
  using const_reverse_iterator = std::reverse_iterator<const T*>;

  // Empty.
  Array() = default;
  // Takes the vector's storage: no element is copied.
  Array(std::vector<T>&& values)  // NOLINT(google-explicit-constructor): a vector is an array
      : Array(std::make_shared<const std::vector<T>>(std::move(values))) {}
  // Copies the elements.
  Array(const std::vector<T>& values)  // NOLINT(google-explicit-constructor)
      : Array(std::vector<T>(values)) {}
  Array(std::initializer_list<T> values) : Array(std::vector<T>(values)) {}
  template <std::input_iterator It, std::sentinel_for<It> Sentinel>
  Array(It first, Sentinel last) : Array(std::vector<T>(first, last)) {}
  explicit Array(std::span<const T> values) : Array(std::vector<T>(values.begin(), values.end())) {}

  const T* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  // No bounds check; at() throws std::out_of_range.
  const T& operator[](size_t i) const noexcept { return data_[i]; }
  const T& at(size_t i) const {
    if (i >= size_) {
      throw std::out_of_range("lumen::Array::at: index " + std::to_string(i) + " of an array of " +
                              std::to_string(size_));
    }
    return data_[i];
  }
  const T& front() const noexcept { return data_[0]; }
  const T& back() const noexcept { return data_[size_ - 1]; }

  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  const T* cbegin() const noexcept { return begin(); }
  const T* cend() const noexcept { return end(); }
  reverse_iterator rbegin() const noexcept { return reverse_iterator(end()); }
  reverse_iterator rend() const noexcept { return reverse_iterator(begin()); }

  std::span<const T> span() const noexcept { return {data_, size_}; }
  operator std::span<const T>() const noexcept { return span(); }  // NOLINT
  // A mutable copy of the elements.
  std::vector<T> ToVector() const { return std::vector<T>(begin(), end()); }

  // Element-wise comparison.
  friend bool operator==(const Array& a, const Array& b) requires std::equality_comparable<T> {
    if (a.size_ != b.size_) return false;
    for (size_t i = 0; i < a.size_; ++i) {
      if (!(a.data_[i] == b.data_[i])) return false;
    }
    return true;
  }

  // Cereal: the element count, a padding byte count, padding up to a 64-byte boundary of the
  // value, then the elements' bytes. Binary archives only.
  template <class Archive>
  void save(Archive& archive) const {
    static_assert(cereal::traits::is_output_serializable<cereal::BinaryData<T>, Archive>::value,
                  "lumen::Array is written by binary archives only");
    archive(cereal::make_size_tag(static_cast<cereal::size_type>(size_)));
    internal::SaveArrayPadding(archive);
    archive(cereal::binary_data(data_, size_bytes()));
  }

  template <class Archive>
  void load(Archive& archive) {
    static_assert(cereal::traits::is_input_serializable<cereal::BinaryData<T>, Archive>::value,
                  "lumen::Array is read by binary archives only");
    cereal::size_type count = 0;
    archive(cereal::make_size_tag(count));
    if constexpr (std::is_base_of_v<cereal::BinaryInputArchive, Archive>) {
      if (auto* value_archive = dynamic_cast<internal::ValueInputArchive*>(&archive)) {
        LoadFromValue(*value_archive, count);
        return;
      }
    }
    internal::LoadArrayPadding(archive);
    std::vector<T> values(static_cast<size_t>(count));
    archive(cereal::binary_data(values.data(), values.size() * sizeof(T)));
    *this = Array(std::move(values));
  }

 private:
  explicit Array(std::shared_ptr<const std::vector<T>> storage)
      : data_(storage->data()), size_(storage->size()), keeper_(std::move(storage)) {}
  Array(const T* data, size_t size, std::shared_ptr<const void> keeper)
      : data_(data), size_(size), keeper_(std::move(keeper)) {}

  // Points into the bytes when they are in the store (and suitably aligned), else copies them
  // into memory of its own, prefaulted in parallel when large.
  void LoadFromValue(internal::ValueInputArchive& archive, cereal::size_type count) {
    internal::LoadArrayPadding(archive);
    internal::SpanInBuf& buf = archive.buf();
    if (count > buf.remaining() / sizeof(T)) {
      throw cereal::Exception("corrupted lumen::Array: " + std::to_string(count) +
                              " elements but only " + std::to_string(buf.remaining()) +
                              " bytes left");
    }
    const auto n = static_cast<size_t>(count);
    const char* bytes = buf.current();
    if (archive.keeper() != nullptr && reinterpret_cast<uintptr_t>(bytes) % alignof(T) == 0) {
      *this = Array(reinterpret_cast<const T*>(bytes), n, archive.keeper());
      buf.Skip(n * sizeof(T));
      return;
    }
    std::shared_ptr<T[]> storage = std::make_unique_for_overwrite<T[]>(n);
    T* copy = storage.get();
    if (n * sizeof(T) >= internal::kPrefaultBytes) internal::PrefaultForWrite(copy, n * sizeof(T));
    internal::CopyBytes(reinterpret_cast<char*>(copy), bytes, n * sizeof(T));
    buf.Skip(n * sizeof(T));
    *this = Array(copy, n, std::move(storage));
  }

  const T* data_ = nullptr;
  size_t size_ = 0;
  // Owns the elements, or keeps the store object they are in pinned.
  std::shared_ptr<const void> keeper_;
};

}  // namespace lumen
