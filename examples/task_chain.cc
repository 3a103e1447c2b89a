// Exercise 2: a chain of dependent tasks per input (load -> normalize -> extract features ->
// loss), passing refs from one to the next and calling Get once at the end.
#include <lumen/lumen.h>

#include <cmath>
#include <iostream>
#include <numeric>
#include <vector>

std::vector<double> Load(int id) {
  std::vector<double> data(1000);
  // A skewed series per input: each one has its own shape and so its own loss.
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::pow(static_cast<double>(i % 97), id + 1);
  return data;
}

std::vector<double> Normalize(std::vector<double> data) {
  const double mean =
      std::accumulate(data.begin(), data.end(), 0.0) / static_cast<double>(data.size());
  double var = 0;
  for (double x : data) var += (x - mean) * (x - mean);
  const double sd = std::sqrt(var / static_cast<double>(data.size()));
  for (double& x : data) x = (x - mean) / sd;
  return data;
}

std::vector<double> ExtractFeatures(std::vector<double> data) {
  double max = data[0], sum_sq = 0;
  for (double x : data) {
    max = std::max(max, x);
    sum_sq += x * x;
  }
  return {max, sum_sq / static_cast<double>(data.size())};
}

double Loss(std::vector<double> features) { return std::abs(features[1] - 1.0) + features[0]; }

LUMEN_REMOTE(Load, Normalize, ExtractFeatures, Loss);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  std::vector<lumen::ObjectRef<double>> losses;
  for (int id = 0; id < 4; ++id) {
    auto data = lumen::Task(Load).Remote(id);
    auto normalized = lumen::Task(Normalize).Remote(data);
    auto features = lumen::Task(ExtractFeatures).Remote(normalized);
    losses.push_back(lumen::Task(Loss).Remote(features));
  }
  auto values = lumen::Get(losses);  // the only Get
  for (size_t i = 0; i < values.size(); ++i) {
    std::cout << "input " << i << " loss " << *values[i] << std::endl;
  }
  lumen::Shutdown();
}
