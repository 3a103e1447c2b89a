// Remote functions: LUMEN_REMOTE registers them, lumen::Task(f).Remote(args...) runs them.
//
//   int Plus(int a, int b) { return a + b; }
//   LUMEN_REMOTE(Plus);
//   lumen::ObjectRef<int> sum = lumen::Task(Plus).Remote(1, 2);
//   lumen::ObjectRef<int> next = lumen::Task(Plus).SetMaxRetries(0).Remote(sum, 10);
//
// Each argument is either a value convertible to the parameter's type or an ObjectRef of
// exactly that type; anything else, or a wrong number of arguments, fails to compile.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "lumen/internal/runtime_api.h"
#include "lumen/internal/serialization.h"
#include "lumen/object_ref.h"
#include "lumen/scheduling.h"

namespace lumen {
namespace internal {

template <typename P, typename A>
constexpr bool ArgMatches() {
  using D = std::decay_t<A>;
  if constexpr (IsObjectRef<D>::value) {
    return std::is_same_v<typename D::ValueType, P>;
  } else {
    return std::is_convertible_v<A&&, P>;
  }
}

template <typename P, typename A>
TaskArgument MakeArgument(A&& arg) {
  using D = std::decay_t<A>;
  TaskArgument out;
  if constexpr (IsObjectRef<D>::value) {
    out.is_ref = true;
    out.object_id = arg.id();
    out.owner_address = arg.owner_address();
  } else if constexpr (std::is_same_v<D, P>) {
    RefCapture capture;
    out.bytes = SerializeToString(arg);
    out.contained = capture.Take();
  } else {
    const P converted(std::forward<A>(arg));
    RefCapture capture;
    out.bytes = SerializeToString(converted);
    out.contained = capture.Take();
  }
  return out;
}

// Checks a call's arguments against the parameters P... at compile time and serializes them.
template <typename... P>
struct ArgumentPacker {
  template <typename... A>
  static std::vector<TaskArgument> Pack(A&&... args) {
    static_assert(sizeof...(A) == sizeof...(P),
                  "lumen Remote(...): wrong number of arguments for this remote function");
    static_assert((ArgMatches<std::decay_t<P>, A>() && ...),
                  "lumen Remote(...): an argument does not match the function's parameter "
                  "type: pass a value convertible to it, or an ObjectRef of exactly that type");
    std::vector<TaskArgument> list;
    list.reserve(sizeof...(A));
    (list.push_back(MakeArgument<std::decay_t<P>>(std::forward<A>(args))), ...);
    return list;
  }
};

template <typename R>
ValueWriter MakeValueWriter(std::shared_ptr<R> value) {
  ValueWriter writer;
  writer.size = SerializedSize(*value);
  writer.write = [value = std::move(value), size = writer.size](char* dst) {
    SerializeInto(*value, dst, size);
  };
  return writer;
}

template <typename R, typename... P, size_t... I>
ValueWriter InvokeWithArgs(R (*f)(P...), const std::vector<ArgView>& args,
                           std::index_sequence<I...>) {
  std::tuple<std::decay_t<P>...> values;
  (DeserializeFrom(args[I].data, args[I].size, std::get<I>(values), args[I].keeper), ...);
  return MakeValueWriter(std::make_shared<R>(f(std::move(std::get<I>(values))...)));
}

template <typename T, typename... P, size_t... I>
std::shared_ptr<void> ConstructWithArgs(T* (*factory)(P...), const std::vector<ArgView>& args,
                                        std::index_sequence<I...>) {
  std::tuple<std::decay_t<P>...> values;
  (DeserializeFrom(args[I].data, args[I].size, std::get<I>(values), args[I].keeper), ...);
  return std::shared_ptr<T>(factory(std::move(std::get<I>(values))...));
}

template <typename M, typename T, typename R, typename... P, size_t... I>
ValueWriter CallWithArgs(M method, T* instance, const std::vector<ArgView>& args,
                         std::index_sequence<I...>) {
  std::tuple<std::decay_t<P>...> values;
  (DeserializeFrom(args[I].data, args[I].size, std::get<I>(values), args[I].keeper), ...);
  return MakeValueWriter(
      std::make_shared<R>((instance->*method)(std::move(std::get<I>(values))...)));
}

// The registry key of a member function pointer: its bytes and its type.
template <typename M>
std::string MethodKey(M method) {
  std::string key(reinterpret_cast<const char*>(&method), sizeof(method));
  return key + typeid(M).name();
}

template <typename R, typename... P>
void RegisterOne(const std::string& name, R (*f)(P...)) {
  static_assert(!std::is_void_v<R>, "LUMEN_REMOTE: a remote function must return a value");
  if constexpr (std::is_pointer_v<R>) {
    // T* Create(args...): an actor factory.
    RegisterFactory(name, reinterpret_cast<const void*>(f), sizeof...(P),
                    [f](const std::vector<ArgView>& args) {
                      return ConstructWithArgs(f, args, std::index_sequence_for<P...>{});
                    });
  } else {
    RegisterFunction(name, reinterpret_cast<const void*>(f), sizeof...(P),
                     [f](const std::vector<ArgView>& args) {
                       return InvokeWithArgs(f, args, std::index_sequence_for<P...>{});
                     });
  }
}

template <typename T, typename R, typename... P>
void RegisterOne(const std::string& name, R (T::*method)(P...)) {
  static_assert(!std::is_void_v<R>, "LUMEN_REMOTE: an actor method must return a value");
  RegisterMethod(name, MethodKey(method), sizeof...(P),
                 [method](void* instance, const std::vector<ArgView>& args) {
                   return CallWithArgs<decltype(method), T, R, P...>(
                       method, static_cast<T*>(instance), args, std::index_sequence_for<P...>{});
                 });
}

template <typename T, typename R, typename... P>
void RegisterOne(const std::string& name, R (T::*method)(P...) const) {
  static_assert(!std::is_void_v<R>, "LUMEN_REMOTE: an actor method must return a value");
  RegisterMethod(name, MethodKey(method), sizeof...(P),
                 [method](void* instance, const std::vector<ArgView>& args) {
                   return CallWithArgs<decltype(method), T, R, P...>(
                       method, static_cast<T*>(instance), args, std::index_sequence_for<P...>{});
                 });
}

std::vector<std::string> SplitRemoteNames(const char* names);

template <typename... F>
bool RegisterRemotes(const char* names, F... functions) {
  const std::vector<std::string> split = SplitRemoteNames(names);
  size_t i = 0;
  (RegisterOne(split.at(i++), functions), ...);
  return true;
}

}  // namespace internal

template <typename F>
class TaskCaller;

// Builds one call of a remote function. Setters return *this; Remote submits.
template <typename R, typename... P>
class TaskCaller<R (*)(P...)> {
 public:
  explicit TaskCaller(R (*f)(P...)) : f_(f) {}

  // Resources the task needs while it runs, e.g. {{"CPU", 2}, {"GPU", 1}}. Default {CPU: 1}.
  TaskCaller& SetResources(std::map<std::string, double> resources) {
    options_.resources = std::move(resources);
    return *this;
  }
  TaskCaller& SetResource(const std::string& name, double amount) {
    options_.resources[name] = amount;
    return *this;
  }
  // Which node runs it (see lumen/scheduling.h); default: this node until busy, then the
  // least-loaded node.
  TaskCaller& SetSchedulingStrategy(SchedulingStrategy strategy) {
    options_.strategy = std::move(strategy);
    return *this;
  }
  // Times the task is re-run when its worker process dies (default 3).
  TaskCaller& SetMaxRetries(int max_retries) {
    options_.max_retries = max_retries;
    return *this;
  }
  // Also retry when the task throws (default false).
  TaskCaller& SetRetryExceptions(bool retry) {
    options_.retry_exceptions = retry;
    return *this;
  }

  template <typename... A>
  ObjectRef<R> Remote(A&&... args) {
    return ObjectRef<R>(internal::SubmitTask(
        internal::FunctionName(reinterpret_cast<const void*>(f_)),
        internal::ArgumentPacker<P...>::Pack(std::forward<A>(args)...), options_));
  }

 private:
  R (*f_)(P...);
  internal::TaskOptions options_;
};

template <typename R, typename... P>
TaskCaller<R (*)(P...)> Task(R (*f)(P...)) {
  return TaskCaller<R (*)(P...)>(f);
}

}  // namespace lumen

#define LUMEN_INTERNAL_CONCAT2(a, b) a##b
#define LUMEN_INTERNAL_CONCAT(a, b) LUMEN_INTERNAL_CONCAT2(a, b)

// Registers remote functions by name, so that workers can run them: LUMEN_REMOTE(Plus, Minus);
#define LUMEN_REMOTE(...)                                                                \
  [[maybe_unused]] static const bool LUMEN_INTERNAL_CONCAT(lumen_remote_, __COUNTER__) = \
      ::lumen::internal::RegisterRemotes(#__VA_ARGS__, __VA_ARGS__)
