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

struct RegisteredFactory {
  std::string name;
  size_t num_args = 0;
  FactoryInvoker invoker;
};

struct RegisteredMethod {
  std::string name;
  size_t num_args = 0;
  MethodInvoker invoker;
};

// Null if nothing of that name was registered in this executable.
const RegisteredFunction* FindFunction(const std::string& name);
const RegisteredFactory* FindFactory(const std::string& name);
const RegisteredMethod* FindMethod(const std::string& name);

}  // namespace lumen::internal
