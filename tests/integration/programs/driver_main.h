// The main of a test driver that runs one scenario per process, named by its first argument
// (cluster flags may follow):
//
//   int main(int argc, char** argv) {
//     return lumen::testing::DriverMain(argc, argv, {{"basic", Basic}, {"named", Named}});
//   }
//
// Init first (in a worker process of the driver, Init serves tasks and never returns), then the
// scenario, whose result is the exit code, then Shutdown. An exception that escapes the scenario
// prints "uncaught WHAT" on standard output and exits 1; an unknown name exits 2.
#pragma once

#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include "lumen/lumen.h"

namespace lumen::testing {

using Scenarios = std::map<std::string, std::function<int()>>;

inline int DriverMain(int argc, char** argv, const Scenarios& scenarios) {
  lumen::Init(argc, argv);
  const std::string name = argc > 1 ? argv[1] : "";
  int rc = 2;
  try {
    if (auto it = scenarios.find(name); it != scenarios.end()) {
      rc = it->second();
    } else {
      std::cerr << argv[0] << ": no scenario '" << name << "'\n";
    }
  } catch (const std::exception& e) {
    std::cout << "uncaught " << e.what() << std::endl;
    rc = 1;
  }
  lumen::Shutdown();
  return rc;
}

}  // namespace lumen::testing
