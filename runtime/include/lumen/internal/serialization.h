// Cereal binary (de)serialization straight into and out of caller-provided memory, so that a
// large value is copied exactly once: into the shared-memory store on Put, out of it on Get, and
// lumen::Array's elements not even then (see lumen/array.h).
//
// Values are written with ValueOutputArchive and read with ValueInputArchive: cereal's binary
// archives, plus where they are in the value and, when reading, who keeps the bytes alive.
// Cereal hands serialize functions the base archive (BinaryOutputArchive&), so a type that wants
// this finds it with dynamic_cast (cereal's archives are polymorphic for that purpose); any other
// archive still works and gets the plain format.
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
#include <cstdint>
#include <cstring>
#include <istream>
#include <memory>
#include <new>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lumen::internal {

// memcpy on up to four threads (one per core), as Ray's plasma client copies large objects: one
// core does not reach the memory bandwidth.
void ParallelCopy(char* dst, const char* src, size_t n);

// Faults in the pages of [data, data + n), freshly allocated memory that a large copy is about
// to fill, on up to four threads and with transparent huge pages where the kernel allows them:
// on these machines the first write to a page costs several times more than copying into it.
// Leaves the bytes unchanged. Best effort, never fails.
void PrefaultForWrite(void* data, size_t n);

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

// Copies from this size on go into memory prefaulted with PrefaultForWrite.
inline constexpr size_t kPrefaultBytes = size_t{4} << 20;

// Resizes `values` (empty or not) to `size` elements whose values the caller then overwrites,
// prefaulting a large allocation first so that neither the zero-fill nor the copy runs at
// first-touch speed. Works for std::vector and std::string.
template <typename Container>
void ResizeForOverwrite(Container& values, size_t size) {
  using T = typename Container::value_type;
  if (size * sizeof(T) >= kPrefaultBytes && size > values.size()) {
    values.reserve(size);
    PrefaultForWrite(values.data(), size * sizeof(T));
  }
  values.resize(size);
}

// An output buffer that knows how many bytes have been written to it.
class ValueOutBuf : public std::streambuf {
 public:
  virtual size_t position() const = 0;
};

// Counts the bytes written to it and stores none.
class CountingBuf : public ValueOutBuf {
 public:
  size_t count() const { return count_; }
  size_t position() const override { return count_; }

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

// Writes into a fixed span of memory.
class SpanOutBuf : public ValueOutBuf {
 public:
  SpanOutBuf(char* data, size_t size) : begin_(data) { setp(data, data + size); }
  size_t position() const override { return static_cast<size_t>(pptr() - begin_); }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::streamsize count = std::min(n, static_cast<std::streamsize>(epptr() - pptr()));
    CopyBytes(pptr(), s, static_cast<size_t>(count));
    setp(pptr() + count, epptr());
    return count;
  }

 private:
  const char* const begin_;
};

// Reads from a fixed span of memory without copying it first.
class SpanInBuf : public std::streambuf {
 public:
  SpanInBuf(const char* data, size_t size) {
    char* begin = const_cast<char*>(data);
    setg(begin, begin, begin + size);
  }
  // The next unread byte and how many remain.
  const char* current() const { return gptr(); }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
  // Moves past `n` bytes without reading them; n <= remaining().
  void Skip(size_t n) { setg(eback(), gptr() + n, egptr()); }

 protected:
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    const std::streamsize count = std::min(n, static_cast<std::streamsize>(egptr() - gptr()));
    CopyBytes(s, gptr(), static_cast<size_t>(count));
    setg(eback(), gptr() + count, egptr());
    return count;
  }
};

// Writes a value; position() is the offset in the value of the next byte written. The value
// starts at a 64-byte boundary when it goes to the store.
class ValueOutputArchive : public cereal::BinaryOutputArchive {
 public:
  ValueOutputArchive(std::ostream& stream, const ValueOutBuf& buf)
      : cereal::BinaryOutputArchive(stream), buf_(buf) {}
  size_t position() const { return buf_.position(); }

 private:
  const ValueOutBuf& buf_;
};

// Reads a value from memory. keeper() is non-null when the bytes stay valid, and their object
// pinned in the store, for as long as a copy of it lives: then a reader may keep pointers into
// them instead of copying.
class ValueInputArchive : public cereal::BinaryInputArchive {
 public:
  ValueInputArchive(std::istream& stream, SpanInBuf& buf, std::shared_ptr<const void> keeper)
      : cereal::BinaryInputArchive(stream), buf_(buf), keeper_(std::move(keeper)) {}
  SpanInBuf& buf() { return buf_; }
  const std::shared_ptr<const void>& keeper() const { return keeper_; }

 private:
  SpanInBuf& buf_;
  const std::shared_ptr<const void> keeper_;
};

// A stream from this thread's pool, reading or writing `buf` until it goes out of scope.
// Constructing a std::ostream or std::istream copies the global locale (about 170 ns on the test
// VM), and every call serializes two to four values; a pooled stream only swaps its buffer.
// A pool rather than one stream, because a value's serialize function may serialize another.
template <typename Stream>
class PooledStream {
 public:
  explicit PooledStream(std::streambuf* buf) : stream_(Take()) { stream_->rdbuf(buf); }
  ~PooledStream() {
    stream_->rdbuf(nullptr);
    Pool().push_back(std::move(stream_));
  }
  PooledStream(const PooledStream&) = delete;
  PooledStream& operator=(const PooledStream&) = delete;
  Stream& get() { return *stream_; }

 private:
  static std::vector<std::unique_ptr<Stream>>& Pool() {
    thread_local std::vector<std::unique_ptr<Stream>> pool;
    return pool;
  }
  static std::unique_ptr<Stream> Take() {
    auto& pool = Pool();
    if (pool.empty()) return std::make_unique<Stream>(nullptr);
    std::unique_ptr<Stream> stream = std::move(pool.back());
    pool.pop_back();
    return stream;
  }

  std::unique_ptr<Stream> stream_;
};

template <typename T>
size_t SerializedSize(const T& value) {
  CountingBuf buf;
  PooledStream<std::ostream> os(&buf);
  {
    ValueOutputArchive archive(os.get(), buf);
    archive(value);
  }
  return buf.count();
}

template <typename T>
void SerializeInto(const T& value, char* data, size_t size) {
  SpanOutBuf buf(data, size);
  PooledStream<std::ostream> os(&buf);
  ValueOutputArchive archive(os.get(), buf);
  archive(value);
}

template <typename T>
std::string SerializeToString(const T& value) {
  std::string out;
  ResizeForOverwrite(out, SerializedSize(value));
  SerializeInto(value, out.data(), out.size());
  return out;
}

// Throws cereal::Exception when the bytes do not hold a T. A corrupted length inside the bytes
// surfaces as the same exception (cereal allocates a container before reading its elements,
// so such a length can still cost a large allocation first). With a `keeper` (see
// ValueInputArchive), `value` may point into the bytes and hold a copy of `keeper`.
template <typename T>
void DeserializeFrom(const char* data, size_t size, T& value,
                     std::shared_ptr<const void> keeper = nullptr) {
  SpanInBuf buf(data, size);
  PooledStream<std::istream> is(&buf);
  ValueInputArchive archive(is.get(), buf, std::move(keeper));
  try {
    archive(value);
  } catch (const std::length_error& e) {
    throw cereal::Exception(std::string("corrupted length in serialized value: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw cereal::Exception("corrupted length in serialized value: allocation failed");
  }
}

}  // namespace lumen::internal

namespace cereal {

// std::vector of arithmetic type from a binary archive: cereal's own load, except that the
// length is checked against the bytes left when reading a Lumen value and that a large vector's
// memory is prefaulted in parallel before the copy (lumen::internal::ResizeForOverwrite). Being
// more specialized than cereal's overload, it is the one chosen; it reads the same bytes.
template <class T, class A>
std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(
    BinaryInputArchive& archive, std::vector<T, A>& vector) {
  size_type size = 0;
  archive(make_size_tag(size));
  if (auto* value_archive = dynamic_cast<lumen::internal::ValueInputArchive*>(&archive)) {
    if (size > value_archive->buf().remaining() / sizeof(T)) {
      throw Exception("corrupted length in serialized value: a vector of " + std::to_string(size) +
                      " elements is longer than the bytes left");
    }
  }
  lumen::internal::ResizeForOverwrite(vector, static_cast<size_t>(size));
  archive(binary_data(vector.data(), static_cast<size_t>(size) * sizeof(T)));
}

}  // namespace cereal
