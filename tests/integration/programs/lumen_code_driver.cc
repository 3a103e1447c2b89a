// A driver for the code distribution tests (tests/integration/code_distribution_test.cc): it
// runs a task and an actor that need {"far": 1} and prints, for each, the node it ran on and
// the file its process runs (/proc/self/exe). Cluster flags go to lumen::Init.
#include <unistd.h>

#include <iostream>
#include <string>

#include "lumen/lumen.h"

namespace {

constexpr int64_t kTimeoutMs = 60000;

// "<node id> <executable>" of the process that runs it.
std::string Where() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  const std::string exe = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "?";
  return lumen::GetRuntimeContext().node_id + " " + exe;
}

class Probe {
 public:
  static Probe* Create() { return new Probe(); }
  std::string Where() { return ::Where(); }
};

LUMEN_REMOTE(Where);
LUMEN_REMOTE(Probe::Create, &Probe::Where);

}  // namespace

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  int rc = 0;
  std::cout << "driver " << Where() << std::endl;
  try {
    auto task = lumen::Task(Where).SetResources({{"far", 1}}).Remote();
    std::cout << "task " << *lumen::Get(task, kTimeoutMs) << std::endl;
  } catch (const std::exception& e) {
    std::cout << "task-failed " << e.what() << std::endl;
    rc = 1;
  }
  try {
    auto actor = lumen::Actor(Probe::Create).SetResource("far", 1).Remote();
    std::cout << "actor " << *lumen::Get(actor.Task(&Probe::Where).Remote(), kTimeoutMs)
              << std::endl;
  } catch (const std::exception& e) {
    std::cout << "actor-failed " << e.what() << std::endl;
    rc = 1;
  }
  lumen::Shutdown();
  return rc;
}
