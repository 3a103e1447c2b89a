// Exercise 6: a parameter-server actor updated by worker tasks that hold its handle.
#include <lumen/lumen.h>

#include <iostream>
#include <vector>

class ParameterServer {
 public:
  static ParameterServer* Create(int size) { return new ParameterServer(size); }
  std::vector<double> Get() const { return params_; }
  int Update(std::vector<double> gradient) {
    for (size_t i = 0; i < params_.size(); ++i) params_[i] -= 0.1 * gradient[i];
    return ++updates_;
  }

 private:
  explicit ParameterServer(int size) : params_(static_cast<size_t>(size), 1.0) {}
  std::vector<double> params_;
  int updates_ = 0;
};

// Pulls the parameters, computes a gradient on its own data and pushes it. The loss here is
// linear (0.5 per parameter), so the result does not depend on how the workers interleave.
int Train(lumen::ActorHandle<ParameterServer> server, int steps) {
  for (int i = 0; i < steps; ++i) {
    auto params = lumen::Get(server.Task(&ParameterServer::Get).Remote());
    std::vector<double> gradient(params->size(), 0.5);
    lumen::Get(server.Task(&ParameterServer::Update).Remote(gradient));
  }
  return steps;
}
LUMEN_REMOTE(ParameterServer::Create, &ParameterServer::Get, &ParameterServer::Update, Train);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  auto server = lumen::Actor(ParameterServer::Create).Remote(10);
  std::vector<lumen::ObjectRef<int>> workers;
  for (int w = 0; w < 4; ++w) workers.push_back(lumen::Task(Train).Remote(server, 5));
  lumen::Get(workers);
  auto params = lumen::Get(server.Task(&ParameterServer::Get).Remote());
  std::cout << "updates 20, first parameter " << (*params)[0] << std::endl;  // 1 - 20 * 0.05
  lumen::Shutdown();
}
