// Remote functions by name, filled at static-initialization time by LUMEN_REMOTE. Thread-safe.
#pragma once

#include <string>

#include "lumen/internal/runtime_api.h"

namespace lumen::internal {

struct RegisteredFunction {
  std::string name;
  size_t num_args = 0;
  Invoker invoker;
};

// Null if no function of that name was registered in this executable.
const RegisteredFunction* FindFunction(const std::string& name);

}  // namespace lumen::internal
