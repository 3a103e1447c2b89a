// Exercise 5: a 50 x 1,000,000 weight set is Put once and passed by ref to 20 tasks.
#include <lumen/lumen.h>

#include <iostream>
#include <numeric>
#include <vector>

using Weights = std::vector<std::vector<double>>;

// Scores one "model": the dot product of every weight row with a row of ones, scaled by id.
double Score(Weights weights, int id) {
  double total = 0;
  for (const auto& row : weights) total += std::accumulate(row.begin(), row.end(), 0.0);
  return total * id;
}
LUMEN_REMOTE(Score);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  lumen::ObjectRef<Weights> weights = lumen::Put(Weights(50, std::vector<double>(1'000'000, 0.5)));
  std::vector<lumen::ObjectRef<double>> scores;
  for (int id = 0; id < 20; ++id) scores.push_back(lumen::Task(Score).Remote(weights, id));
  double sum = 0;
  for (const auto& score : lumen::Get(scores)) sum += *score;
  std::cout << "sum of scores " << sum << std::endl;  // 25e6 * (0 + 1 + ... + 19) = 4.75e9
  lumen::Shutdown();
}
