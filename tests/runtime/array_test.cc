#include "lumen/array.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "lumen/internal/serialization.h"

namespace lumen {
namespace {

using internal::DeserializeFrom;
using internal::SerializedSize;
using internal::SerializeInto;

// A user struct holding arrays beside other fields.
struct Layer {
  std::string name;
  Array<float> weights;
  int32_t units = 0;
  Array<int64_t> shape;

  template <class A>
  void serialize(A& a) {
    a(name, weights, units, shape);
  }
};

// Serialized bytes in 64-byte-aligned memory, as an object in the store is, owned by a
// shared_ptr that plays the store pin's part.
struct StoreLike {
  std::shared_ptr<char> bytes;
  size_t size = 0;

  bool Contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    return c >= bytes.get() && c < bytes.get() + size;
  }
};

template <typename T>
StoreLike WriteAligned(const T& value) {
  StoreLike out;
  out.size = SerializedSize(value);
  const size_t rounded = (out.size + 63) / 64 * 64 + 64;
  out.bytes = std::shared_ptr<char>(static_cast<char*>(std::aligned_alloc(64, rounded)), std::free);
  SerializeInto(value, out.bytes.get(), out.size);
  return out;
}

std::vector<double> Iota(size_t n, double start) {
  std::vector<double> values(n);
  std::iota(values.begin(), values.end(), start);
  return values;
}

TEST_CASE("an Array made from a moved vector takes its storage without copying", "[array]") {
  std::vector<double> values = Iota(1000, 0.5);
  const double* storage = values.data();
  Array<double> array(std::move(values));
  CHECK(array.data() == storage);
  CHECK(array.size() == 1000);
  CHECK(array[999] == 999.5);
  const Array<double> copy = array;  // copies share the elements
  array = Array<double>();
  CHECK(copy.data() == storage);
}

TEST_CASE("an Array offers read-only, span-like access", "[array]") {
  const std::vector<int> source{3, 1, 4, 1, 5};
  const Array<int> from_list{3, 1, 4, 1, 5};
  const Array<int> from_range(source.begin(), source.end());
  const Array<int> from_span{std::span<const int>(source)};
  const Array<int> from_copy = source;
  CHECK(from_copy.data() != source.data());
  for (const Array<int>* array : {&from_list, &from_range, &from_span, &from_copy}) {
    CHECK(*array == from_list);
    CHECK(array->size() == 5);
    CHECK(array->size_bytes() == 5 * sizeof(int));
    CHECK_FALSE(array->empty());
    CHECK(array->front() == 3);
    CHECK(array->back() == 5);
    CHECK(array->at(2) == 4);
    CHECK_THROWS_AS(array->at(5), std::out_of_range);
    CHECK(std::accumulate(array->begin(), array->end(), 0) == 14);
    CHECK(std::vector<int>(array->rbegin(), array->rend()) == std::vector<int>{5, 1, 4, 1, 3});
    std::span<const int> span = *array;
    CHECK(span.size() == 5);
    CHECK(array->span().data() == array->data());
    CHECK(array->ToVector() == source);
  }
  CHECK(Array<int>().empty());
  CHECK_FALSE(from_list == Array<int>{3, 1, 4});
}

TEST_CASE("an Array read from store-like bytes points into them, aligned, and keeps them alive",
          "[array]") {
  const std::vector<double> expected = Iota(10000, 1.0);
  StoreLike store = WriteAligned(Array<double>(expected));
  std::weak_ptr<char> alive = store.bytes;
  Array<double> array;
  DeserializeFrom(store.bytes.get(), store.size, array, store.bytes);
  CHECK(store.Contains(array.data()));
  CHECK(reinterpret_cast<uintptr_t>(array.data()) % internal::kArrayAlignment == 0);
  store.bytes.reset();
  CHECK_FALSE(alive.expired());  // the Array holds the keeper
  CHECK(array.ToVector() == expected);
  array = Array<double>();
  CHECK(alive.expired());
}

TEST_CASE("an Array read without a keeper owns a copy of the elements", "[array]") {
  const std::vector<int16_t> expected{1, -2, 3};
  StoreLike store = WriteAligned(Array<int16_t>(expected));
  Array<int16_t> array;
  DeserializeFrom(store.bytes.get(), store.size, array);
  CHECK_FALSE(store.Contains(array.data()));
  CHECK(array.ToVector() == expected);
}

TEST_CASE("a large Array read without a keeper is copied into prefaulted memory", "[array]") {
  const std::vector<double> expected = Iota(3 * internal::kPrefaultBytes / sizeof(double) + 3, 2);
  const std::string bytes = internal::SerializeToString(Array<double>(expected));
  Array<double> array;
  DeserializeFrom(bytes.data(), bytes.size(), array);
  CHECK(array.ToVector() == expected);
}

TEST_CASE("maps and structs of Arrays are read in place, every block aligned", "[array]") {
  std::map<std::string, Array<double>> weights;
  for (int i = 0; i < 5; ++i) {
    weights["w" + std::to_string(i)] = Iota(100 + static_cast<size_t>(i) * 37, i);
  }
  std::vector<Layer> layers{{"dense", Array<float>{0.5F, 1.5F}, 2, Array<int64_t>{2, 1}},
                            {"empty", Array<float>(), 0, Array<int64_t>{}}};

  StoreLike map_store = WriteAligned(weights);
  std::map<std::string, Array<double>> read_weights;
  DeserializeFrom(map_store.bytes.get(), map_store.size, read_weights, map_store.bytes);
  REQUIRE(read_weights.size() == weights.size());
  for (const auto& [name, array] : weights) {
    const Array<double>& read = read_weights.at(name);
    CHECK(read == array);
    CHECK(map_store.Contains(read.data()));
    CHECK(reinterpret_cast<uintptr_t>(read.data()) % internal::kArrayAlignment == 0);
  }

  StoreLike layer_store = WriteAligned(layers);
  std::vector<Layer> read_layers;
  DeserializeFrom(layer_store.bytes.get(), layer_store.size, read_layers, layer_store.bytes);
  REQUIRE(read_layers.size() == 2);
  CHECK(read_layers[0].name == "dense");
  CHECK(read_layers[0].units == 2);
  CHECK(read_layers[0].weights == layers[0].weights);
  CHECK(read_layers[0].shape == layers[0].shape);
  CHECK(layer_store.Contains(read_layers[0].weights.data()));
  CHECK(layer_store.Contains(read_layers[0].shape.data()));
  CHECK(read_layers[1].name == "empty");
  CHECK(read_layers[1].weights.empty());
}

TEST_CASE("an Array's serialized size is exactly what serialization writes", "[array]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}}) {
    // Preceded by a string of varying length, so that every padding length shows up.
    for (size_t prefix = 0; prefix < 70; prefix += 9) {
      const std::pair<std::string, Array<uint8_t>> value{std::string(prefix, 'p'),
                                                         std::vector<uint8_t>(n, 0x5a)};
      const size_t size = SerializedSize(value);
      std::string buffer(size + 64, '\xa5');
      SerializeInto(value, buffer.data(), buffer.size());
      INFO("n = " << n << ", prefix = " << prefix);
      CHECK(buffer.substr(size) == std::string(64, '\xa5'));
      CHECK(internal::SerializeToString(value) == buffer.substr(0, size));
    }
  }
}

TEST_CASE("corrupted or truncated Array bytes throw cereal::Exception", "[array]") {
  const std::string bytes = internal::SerializeToString(Array<int32_t>{1, 2, 3, 4});
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::vector<char> truncated(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(length));
    Array<int32_t> out;
    INFO("truncated to " << length << " of " << bytes.size() << " bytes");
    CHECK_THROWS_AS(DeserializeFrom(truncated.data(), truncated.size(), out), cereal::Exception);
  }
  SECTION("a count larger than the bytes") {
    std::string corrupt = bytes;
    const uint64_t huge = uint64_t{1} << 40;
    std::memcpy(corrupt.data(), &huge, sizeof(huge));
    Array<int32_t> out;
    CHECK_THROWS_AS(DeserializeFrom(corrupt.data(), corrupt.size(), out, std::make_shared<int>()),
                    cereal::Exception);
  }
  SECTION("a padding of 64 bytes or more") {
    std::string corrupt = bytes;
    corrupt[sizeof(uint64_t)] = static_cast<char>(64);
    Array<int32_t> out;
    CHECK_THROWS_AS(DeserializeFrom(corrupt.data(), corrupt.size(), out), cereal::Exception);
  }
}

TEST_CASE("Arrays written or read by plain cereal archives interoperate with Lumen's", "[array]") {
  const Array<double> array{1.5, -2.5, 3.25};
  SECTION("written by a plain archive, read by Lumen") {
    std::ostringstream out;
    {
      cereal::BinaryOutputArchive archive(out);
      archive(std::string("x"), array);
    }
    const std::string bytes = out.str();
    std::pair<std::string, Array<double>> read;
    DeserializeFrom(bytes.data(), bytes.size(), read);
    CHECK(read.second == array);
  }
  SECTION("written by Lumen, read by a plain archive") {
    std::istringstream in(internal::SerializeToString(std::make_pair(std::string("x"), array)));
    std::pair<std::string, Array<double>> read;
    {
      cereal::BinaryInputArchive archive(in);
      archive(read);
    }
    CHECK(read.second == array);
  }
}

TEST_CASE("prefaulting memory leaves its bytes unchanged", "[array]") {
  for (size_t n : {size_t{0}, size_t{100}, internal::kPrefaultBytes + 4097, size_t{40} << 20}) {
    std::vector<char> bytes(n + 3);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + 1);
    const std::vector<char> before = bytes;
    internal::PrefaultForWrite(bytes.data() + 3, n);
    INFO("n = " << n);
    CHECK(bytes == before);
  }
}

TEST_CASE("a large std::vector of numbers reads back equal through the prefaulting load",
          "[array]") {
  const std::vector<double> expected = Iota(internal::kPrefaultBytes / sizeof(double) + 1, -3);
  const std::string bytes = internal::SerializeToString(expected);
  std::vector<double> read{1, 2};  // not empty: its old elements are replaced
  DeserializeFrom(bytes.data(), bytes.size(), read);
  CHECK(read == expected);
}

}  // namespace
}  // namespace lumen
