#include "runtime/internal/function_registry.h"

#include <map>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "lumen/errors.h"
#include "lumen/task.h"

namespace lumen::internal {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, RegisteredFunction> by_name;
  std::map<std::string, RegisteredFactory> factories;
  std::map<std::string, RegisteredMethod> methods;
  std::map<const void*, std::string> names;
  std::map<std::string, std::string> method_names;
};

Registry& GetRegistry() {
  static auto* registry = new Registry();
  return *registry;
}

}  // namespace

void RegisterFunction(const std::string& name, const void* key, size_t num_args, Invoker invoker) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.by_name[name] = RegisteredFunction{name, num_args, std::move(invoker)};
  registry.names[key] = name;
}

void RegisterFactory(const std::string& name, const void* key, size_t num_args,
                     FactoryInvoker invoker) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.factories[name] = RegisteredFactory{name, num_args, std::move(invoker)};
  registry.names[key] = name;
}

void RegisterMethod(const std::string& name, const std::string& key, size_t num_args,
                    MethodInvoker invoker) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.methods[name] = RegisteredMethod{name, num_args, std::move(invoker)};
  registry.method_names[key] = name;
}

const std::string& MethodName(const std::string& key) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = registry.method_names.find(key);
  if (it == registry.method_names.end()) {
    throw Error(
        "lumen: this actor method is not registered as remote; add it to LUMEN_REMOTE, e.g. "
        "LUMEN_REMOTE(Counter::Create, &Counter::Add)");
  }
  return it->second;
}

const RegisteredFactory* FindFactory(const std::string& name) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = registry.factories.find(name);
  return it == registry.factories.end() ? nullptr : &it->second;
}

const RegisteredMethod* FindMethod(const std::string& name) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = registry.methods.find(name);
  return it == registry.methods.end() ? nullptr : &it->second;
}

const std::string& FunctionName(const void* key) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = registry.names.find(key);
  if (it == registry.names.end()) {
    throw Error(
        "lumen::Task: this function is not registered as remote; add LUMEN_REMOTE(f) at "
        "namespace scope in the file that defines it");
  }
  return it->second;
}

const RegisteredFunction* FindFunction(const std::string& name) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = registry.by_name.find(name);
  return it == registry.by_name.end() ? nullptr : &it->second;
}

std::vector<std::string> SplitRemoteNames(const char* names) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(names, ',')) {
    absl::string_view name = absl::StripAsciiWhitespace(part);
    if (!name.empty() && name.front() == '&') name.remove_prefix(1);
    out.emplace_back(name.data(), name.size());
  }
  return out;
}

}  // namespace lumen::internal
