#include "lumen/internal/serialization.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace lumen::internal {
namespace {

// A user type serialized through a member template, as users of the public API write them.
struct Sample {
  int id = 0;
  double weight = 0;
  std::string name;
  std::vector<int> readings;

  template <class A>
  void serialize(A& a) {
    a(id, weight, name, readings);
  }
  bool operator==(const Sample&) const = default;
};

template <typename T>
T RoundTrip(const T& value) {
  const std::string bytes = SerializeToString(value);
  T out{};
  DeserializeFrom(bytes.data(), bytes.size(), out);
  return out;
}

// Serializes `value` into a buffer with room to spare and checks that exactly SerializedSize
// bytes were written: the bytes after them keep their sentinel, and the bytes up to them equal
// what SerializeToString produces.
template <typename T>
void CheckSizeMatchesBytesWritten(const T& value) {
  const size_t size = SerializedSize(value);
  constexpr size_t kSlack = 64;
  std::string buffer(size + kSlack, '\xa5');
  SerializeInto(value, buffer.data(), buffer.size());
  CHECK(buffer.substr(size) == std::string(kSlack, '\xa5'));
  CHECK(buffer.substr(0, size) == SerializeToString(value));
  CHECK(SerializeToString(value).size() == size);
}

// Every proper prefix of `value`'s bytes fails to deserialize with a cereal::Exception.
template <typename T>
void CheckEveryTruncationThrows(const T& value) {
  const std::string bytes = SerializeToString(value);
  REQUIRE_FALSE(bytes.empty());
  for (size_t length = 0; length < bytes.size(); ++length) {
    // A copy of exactly `length` bytes, so that reading past it would be seen by sanitizers.
    std::vector<char> truncated(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(length));
    T out{};
    INFO("truncated to " << length << " of " << bytes.size() << " bytes");
    CHECK_THROWS_AS(DeserializeFrom(truncated.data(), truncated.size(), out), cereal::Exception);
  }
}

Sample MakeSample() {
  return {.id = -7, .weight = 2.5, .name = "sensor-b", .readings = {1, -2, 3, 40000}};
}

TEST_CASE("values round-trip through SerializeToString and DeserializeFrom", "[serialization]") {
  SECTION("int") {
    CHECK(RoundTrip(0) == 0);
    CHECK(RoundTrip(-123456) == -123456);
    CHECK(RoundTrip(std::numeric_limits<int>::min()) == std::numeric_limits<int>::min());
    CHECK(RoundTrip(std::numeric_limits<int>::max()) == std::numeric_limits<int>::max());
  }
  SECTION("std::string") {
    CHECK(RoundTrip(std::string()).empty());
    const std::string with_nuls("a\0b\0c", 5);
    CHECK(RoundTrip(with_nuls) == with_nuls);
    const std::string large(1 << 20, 'z');
    CHECK(RoundTrip(large) == large);
  }
  SECTION("std::vector<double>") {
    CHECK(RoundTrip(std::vector<double>()).empty());
    const std::vector<double> values = {0.0,    -0.0,   1.5,
                                        -1e300, 5e-324, std::numeric_limits<double>::infinity()};
    const std::vector<double> out = RoundTrip(values);
    REQUIRE(out.size() == values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      // Bit-for-bit, so that -0.0 stays negative.
      // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
      CHECK(std::memcmp(&out[i], &values[i], sizeof(double)) == 0);
    }
    const double nan = std::nan("");
    CHECK(std::isnan(RoundTrip(std::vector<double>{nan}).at(0)));
  }
  SECTION("std::map<std::string, int>") {
    CHECK(RoundTrip(std::map<std::string, int>()).empty());
    const std::map<std::string, int> map = {{"", 0}, {"one", 1}, {"minus", -1}, {"big", 1 << 30}};
    CHECK(RoundTrip(map) == map);
  }
  SECTION("a user struct with a serialize member template") {
    CHECK(RoundTrip(MakeSample()) == MakeSample());
    CHECK(RoundTrip(Sample{}) == Sample{});
  }
  SECTION("a vector of user structs") {
    const std::vector<Sample> samples = {MakeSample(), Sample{}, MakeSample()};
    CHECK(RoundTrip(samples) == samples);
  }
}

TEST_CASE("SerializedSize equals the number of bytes serialization writes", "[serialization]") {
  SECTION("int") {
    CHECK(SerializedSize(42) == sizeof(int));
    CheckSizeMatchesBytesWritten(42);
  }
  SECTION("std::string") {
    // A 64-bit length, then the characters.
    CHECK(SerializedSize(std::string("abc")) == 8 + 3);
    CheckSizeMatchesBytesWritten(std::string());
    CheckSizeMatchesBytesWritten(std::string(100000, 'q'));
  }
  SECTION("std::vector<double>") {
    CHECK(SerializedSize(std::vector<double>{1, 2, 3}) == 8 + 3 * sizeof(double));
    CheckSizeMatchesBytesWritten(std::vector<double>(5000, 0.25));
  }
  SECTION("std::map<std::string, int>") {
    CHECK(SerializedSize(std::map<std::string, int>{{"k", 1}}) == 8 + (8 + 1) + sizeof(int));
    CheckSizeMatchesBytesWritten(std::map<std::string, int>{{"a", 1}, {"bb", 2}, {"ccc", 3}});
  }
  SECTION("a user struct") {
    const Sample sample = MakeSample();
    CHECK(SerializedSize(sample) == sizeof(int) + sizeof(double) + (8 + sample.name.size()) +
                                        (8 + sample.readings.size() * sizeof(int)));
    CheckSizeMatchesBytesWritten(sample);
  }
}

TEST_CASE("SerializeInto a buffer smaller than SerializedSize throws instead of overrunning it",
          "[serialization]") {
  const Sample sample = MakeSample();
  const size_t size = SerializedSize(sample);
  std::vector<char> exact(size);
  CHECK_NOTHROW(SerializeInto(sample, exact.data(), exact.size()));
  std::vector<char> short_by_one(size - 1);
  CHECK_THROWS_AS(SerializeInto(sample, short_by_one.data(), short_by_one.size()),
                  cereal::Exception);
}

TEST_CASE("CopyBytes copies every byte, split across threads or not", "[serialization]") {
  for (const size_t n : {size_t{0}, size_t{1}, kParallelCopyBytes - 1, kParallelCopyBytes,
                         kParallelCopyBytes + 13, 5 * kParallelCopyBytes + 7}) {
    // Unaligned on both sides, as serialized payloads are after their length prefix.
    std::vector<char> src(n + 3), dst(n + 5, 0);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 131 + 7);
    CopyBytes(dst.data() + 5, src.data() + 3, n);
    INFO("n = " << n);
    CHECK(std::memcmp(dst.data() + 5, src.data() + 3, n) == 0);
    CHECK(std::all_of(dst.begin(), dst.begin() + 5, [](char c) { return c == 0; }));
  }
}

TEST_CASE("a value larger than the parallel-copy threshold round-trips", "[serialization]") {
  std::vector<int64_t> big(3 * kParallelCopyBytes / sizeof(int64_t) + 5);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<int64_t>(i * 2654435761u);
  const std::string bytes = SerializeToString(big);
  std::vector<int64_t> back;
  DeserializeFrom(bytes.data(), bytes.size(), back);
  CHECK(back == big);
}

TEST_CASE("DeserializeFrom on truncated bytes throws cereal::Exception", "[serialization]") {
  SECTION("int") { CheckEveryTruncationThrows(1234); }
  SECTION("std::string") {
    CheckEveryTruncationThrows(std::string());
    CheckEveryTruncationThrows(std::string("hello, world"));
  }
  SECTION("std::vector<double>") { CheckEveryTruncationThrows(std::vector<double>{1, 2, 3}); }
  SECTION("std::map<std::string, int>") {
    CheckEveryTruncationThrows(std::map<std::string, int>{{"a", 1}, {"bc", 2}});
  }
  SECTION("a user struct") { CheckEveryTruncationThrows(MakeSample()); }
}

// cereal resizes a container before reading it, so a corrupted prefix raises std::length_error
// or std::bad_alloc inside cereal; callers see cereal::Exception like any other bad input.
TEST_CASE("DeserializeFrom on a length prefix larger than the bytes throws cereal::Exception",
          "[serialization]") {
  // 2^62 elements: beyond max_size(), so the standard library refuses it without allocating.
  const uint64_t huge = uint64_t{1} << 62;
  std::string bytes(sizeof(huge), '\0');
  std::memcpy(bytes.data(), &huge, sizeof(huge));
  bytes += "abc";
  std::vector<double> out;
  CHECK_THROWS_AS(DeserializeFrom(bytes.data(), bytes.size(), out), cereal::Exception);
}

}  // namespace
}  // namespace lumen::internal
