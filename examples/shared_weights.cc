// Exercise 5: a weights dictionary of 50 arrays of 1,000,000 doubles (400 MB) is Put once and
// passed by ref to 20 tasks. lumen::Array is read in place from the shared-memory store, so no
// task copies the weights (as with numpy arrays in Ray).
#include <lumen/lumen.h>

#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

using Weights = std::map<std::string, lumen::Array<double>>;

// Scores one "model": the dot product of every weight array with a row of ones, scaled by id.
double Score(Weights weights, int id) {
  double total = 0;
  for (const auto& [name, array] : weights) {
    total += std::accumulate(array.begin(), array.end(), 0.0);
  }
  return total * id;
}
LUMEN_REMOTE(Score);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  Weights weights;
  for (int i = 0; i < 50; ++i) {
    weights["layer" + std::to_string(i)] =
        std::vector<double>(1'000'000, 0.5);  // moved, not copied
  }
  lumen::ObjectRef<Weights> ref = lumen::Put(weights);
  std::vector<lumen::ObjectRef<double>> scores;
  for (int id = 0; id < 20; ++id) scores.push_back(lumen::Task(Score).Remote(ref, id));
  double sum = 0;
  for (const auto& score : lumen::Get(scores)) sum += *score;
  std::cout << "sum of scores " << sum << std::endl;  // 25e6 * (0 + 1 + ... + 19) = 4.75e9
  lumen::Shutdown();
}
