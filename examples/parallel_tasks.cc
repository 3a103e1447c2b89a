// Exercise 1: four one-second tasks run in parallel (on a node with at least four CPUs).
#include <lumen/lumen.h>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

int SlowSquare(int x) {
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return x * x;
}
LUMEN_REMOTE(SlowSquare);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 4; ++i) refs.push_back(lumen::Task(SlowSquare).Remote(i));
  int sum = 0;
  for (const auto& value : lumen::Get(refs)) sum += *value;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "sum of squares " << sum << " in " << seconds << " s" << std::endl;
  lumen::Shutdown();
}
