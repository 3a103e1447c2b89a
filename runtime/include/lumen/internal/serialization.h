// Cereal binary (de)serialization straight into and out of caller-provided memory, so that a
// large value is copied exactly once: into the shared-memory store on Put, out of it on Get.
#pragma once

#include <algorithm>
#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstring>
#include <istream>
#include <new>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>

namespace lumen::internal {

// Counts the bytes written to it and stores none.
class CountingBuf : public std::streambuf {
 public:
  size_t count() const { return count_; }

 protected:
  int_type overflow(int_type c) override {
    ++count_;
    return c;
  }
  std::streamsize xsputn(const char*, std::streamsize n) override {
    count_ += static_cast<size_t>(n);
    return n;
  }

 private:
  size_t count_ = 0;
};

// memcpy on up to four threads (one per core), as Ray's plasma client copies large objects: one
// core does not reach the memory bandwidth.
void ParallelCopy(char* dst, const char* src, size_t n);

// memcpy, or ParallelCopy from kParallelCopyBytes on. Cereal writes every field through here,
// so the small case must stay a plain memcpy.
inline constexpr size_t kParallelCopyBytes = size_t{8} << 20;
inline void CopyBytes(char* dst, const char* src, size_t n) {
  if (n >= kParallelCopyBytes) {
    ParallelCopy(dst, src, n);
  } else if (n > 0) {
    std::memcpy(dst, src, n);
  }
}

// Writes into a fixed span of memory.
class SpanOutBuf : public std::streambuf {
 public:
  SpanOutBuf(char* data, size_t size) { setp(data, data + size); }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::streamsize count = std::min(n, static_cast<std::streamsize>(epptr() - pptr()));
    CopyBytes(pptr(), s, static_cast<size_t>(count));
    setp(pptr() + count, epptr());
    return count;
  }
};

// Reads from a fixed span of memory without copying it first.
class SpanInBuf : public std::streambuf {
 public:
  SpanInBuf(const char* data, size_t size) {
    char* begin = const_cast<char*>(data);
    setg(begin, begin, begin + size);
  }

 protected:
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    const std::streamsize count = std::min(n, static_cast<std::streamsize>(egptr() - gptr()));
    CopyBytes(s, gptr(), static_cast<size_t>(count));
    setg(eback(), gptr() + count, egptr());
    return count;
  }
};

template <typename T>
size_t SerializedSize(const T& value) {
  CountingBuf buf;
  std::ostream os(&buf);
  {
    cereal::BinaryOutputArchive archive(os);
    archive(value);
  }
  return buf.count();
}

template <typename T>
void SerializeInto(const T& value, char* data, size_t size) {
  SpanOutBuf buf(data, size);
  std::ostream os(&buf);
  cereal::BinaryOutputArchive archive(os);
  archive(value);
}

template <typename T>
std::string SerializeToString(const T& value) {
  std::string out(SerializedSize(value), '\0');
  SerializeInto(value, out.data(), out.size());
  return out;
}

// Throws cereal::Exception when the bytes do not hold a T. A corrupted length inside the bytes
// surfaces as the same exception (cereal allocates a container before reading its elements,
// so such a length can still cost a large allocation first).
template <typename T>
void DeserializeFrom(const char* data, size_t size, T& value) {
  SpanInBuf buf(data, size);
  std::istream is(&buf);
  cereal::BinaryInputArchive archive(is);
  try {
    archive(value);
  } catch (const std::length_error& e) {
    throw cereal::Exception(std::string("corrupted length in serialized value: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw cereal::Exception("corrupted length in serialized value: allocation failed");
  }
}

}  // namespace lumen::internal
