// Exercise 8: pi with a supervisor actor that worker actors report their samples to.
#include <lumen/lumen.h>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

class Supervisor {
 public:
  static Supervisor* Create() { return new Supervisor(); }
  int64_t Report(int64_t inside, int64_t total) {
    inside_ += inside;
    total_ += total;
    return total_;
  }
  double Estimate() const {
    return 4.0 * static_cast<double>(inside_) / static_cast<double>(total_);
  }

 private:
  int64_t inside_ = 0;
  int64_t total_ = 0;
};

class Sampler {
 public:
  static Sampler* Create(lumen::ActorHandle<Supervisor> supervisor, int seed) {
    return new Sampler(std::move(supervisor), seed);
  }
  int64_t Sample(int batches, int64_t batch_size) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    int64_t reported = 0;
    for (int b = 0; b < batches; ++b) {
      int64_t inside = 0;
      for (int64_t i = 0; i < batch_size; ++i) {
        const double x = unit(rng_), y = unit(rng_);
        inside += x * x + y * y <= 1.0;
      }
      reported = *lumen::Get(supervisor_.Task(&Supervisor::Report).Remote(inside, batch_size));
    }
    return reported;
  }

 private:
  Sampler(lumen::ActorHandle<Supervisor> supervisor, int seed)
      : supervisor_(std::move(supervisor)), rng_(seed) {}
  lumen::ActorHandle<Supervisor> supervisor_;
  std::mt19937_64 rng_;
};

LUMEN_REMOTE(Supervisor::Create, &Supervisor::Report, &Supervisor::Estimate, Sampler::Create,
             &Sampler::Sample);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  auto supervisor = lumen::Actor(Supervisor::Create).Remote();
  std::vector<lumen::ObjectRef<int64_t>> runs;
  std::vector<lumen::ActorHandle<Sampler>> samplers;
  for (int w = 0; w < 4; ++w) {
    samplers.push_back(lumen::Actor(Sampler::Create).Remote(supervisor, w));
    runs.push_back(samplers.back().Task(&Sampler::Sample).Remote(10, int64_t{1'000'000}));
  }
  lumen::Get(runs);
  const double estimate = *lumen::Get(supervisor.Task(&Supervisor::Estimate).Remote());
  std::cout << "pi is about " << estimate << " (error " << std::abs(estimate - M_PI) << ")"
            << std::endl;
  lumen::Shutdown();
}
