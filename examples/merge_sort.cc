// Exercise 7: a parallel merge sort with nested tasks and a sequential cutoff, checked against
// std::sort, with its speed-up.
#include <lumen/lumen.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <vector>

constexpr size_t kCutoff = 1'000'000;

std::vector<int> MergeSort(std::vector<int> values) {
  if (values.size() <= kCutoff) {
    std::sort(values.begin(), values.end());
    return values;
  }
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  auto left = lumen::Task(MergeSort).Remote(std::vector<int>(values.begin(), middle));
  auto right = lumen::Task(MergeSort).Remote(std::vector<int>(middle, values.end()));
  auto halves = lumen::Get(std::vector<lumen::ObjectRef<std::vector<int>>>{left, right});
  std::vector<int> out(values.size());
  std::merge(halves[0]->begin(), halves[0]->end(), halves[1]->begin(), halves[1]->end(),
             out.begin());
  return out;
}
LUMEN_REMOTE(MergeSort);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  std::vector<int> values(4'000'000);
  std::mt19937 rng(1);
  for (auto& v : values) v = static_cast<int>(rng());
  auto timed = [](auto&& fn) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<int> expected = values;
  const double sequential = timed([&] { std::sort(expected.begin(), expected.end()); });
  std::shared_ptr<std::vector<int>> sorted;
  const double parallel =
      timed([&] { sorted = lumen::Get(lumen::Task(MergeSort).Remote(values)); });
  std::cout << "sorted correctly: " << (*sorted == expected ? "yes" : "no") << std::endl;
  std::cout << "std::sort " << sequential << " s, parallel merge sort " << parallel
            << " s, speed-up " << sequential / parallel << std::endl;
  lumen::Shutdown();
}
