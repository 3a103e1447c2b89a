// Exercise 4: Wait returns the first three of six tasks of random duration to finish.
#include <lumen/lumen.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

// Sleeps, then returns the time it finished (ms since the epoch of the steady clock).
int64_t SleepFor(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
LUMEN_REMOTE(SleepFor);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  std::mt19937 rng(std::random_device{}());
  std::vector<int> durations = {100, 400, 700, 1000, 1300, 1600};
  std::shuffle(durations.begin(), durations.end(), rng);
  std::vector<lumen::ObjectRef<int64_t>> refs;
  for (int ms : durations) refs.push_back(lumen::Task(SleepFor).Remote(ms));
  auto [ready, unready] = lumen::Wait(refs, 3);
  int64_t last_ready = 0;
  for (const auto& value : lumen::Get(ready)) last_ready = std::max(last_ready, *value);
  int64_t first_unready = INT64_MAX;
  for (const auto& value : lumen::Get(unready)) first_unready = std::min(first_unready, *value);
  std::cout << "ready " << ready.size() << " unready " << unready.size() << std::endl;
  std::cout << "ready finished first: " << (last_ready <= first_unready ? "yes" : "no")
            << std::endl;
  lumen::Shutdown();
}
