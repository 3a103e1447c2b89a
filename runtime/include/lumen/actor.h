// Actors: a stateful instance in its own worker process, called through a handle.
//
//   class Counter {
//    public:
//     static Counter* Create(int start) { return new Counter(start); }
//     int Add(int x) { return value_ += x; }
//    ...
//   };
//   LUMEN_REMOTE(Counter::Create, &Counter::Add);
//
//   lumen::ActorHandle<Counter> counter = lumen::Actor(Counter::Create).SetName("c").Remote(0);
//   lumen::ObjectRef<int> five = counter.Task(&Counter::Add).Remote(5);
//
// Calls from one caller run in the order they were made and are pipelined. Handles are values:
// copy them, pass them to tasks and other actors, or find a named actor with GetActor.
// A call on an actor that died and will not restart fails with ActorDiedError.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "lumen/internal/runtime_api.h"
#include "lumen/object_ref.h"
#include "lumen/scheduling.h"
#include "lumen/task.h"

namespace lumen {

template <typename R, typename... P>
class ActorTaskCaller {
 public:
  ActorTaskCaller(std::string actor_id, std::string method)
      : actor_id_(std::move(actor_id)), method_(std::move(method)) {}

  template <typename... A>
  ObjectRef<R> Remote(A&&... args) {
    return ObjectRef<R>(internal::SubmitActorTask(
        actor_id_, method_, internal::ArgumentPacker<P...>::Pack(std::forward<A>(args)...)));
  }

 private:
  std::string actor_id_;
  std::string method_;
};

template <typename T>
class ActorHandle {
 public:
  ActorHandle() = default;
  explicit ActorHandle(std::string actor_id) : actor_id_(std::move(actor_id)) {}

  template <typename R, typename... P>
  ActorTaskCaller<R, P...> Task(R (T::*method)(P...)) const {
    return ActorTaskCaller<R, P...>(actor_id_, internal::MethodName(internal::MethodKey(method)));
  }
  template <typename R, typename... P>
  ActorTaskCaller<R, P...> Task(R (T::*method)(P...) const) const {
    return ActorTaskCaller<R, P...>(actor_id_, internal::MethodName(internal::MethodKey(method)));
  }

  const std::string& id() const { return actor_id_; }
  bool valid() const { return !actor_id_.empty(); }
  bool operator==(const ActorHandle& other) const { return actor_id_ == other.actor_id_; }

  template <class Archive>
  void serialize(Archive& archive) {
    archive(actor_id_);
  }

 private:
  std::string actor_id_;
};

// Builds the creation of one actor from its factory `T* Create(P...)`.
template <typename T, typename... P>
class ActorCreator {
 public:
  explicit ActorCreator(T* (*factory)(P...)) : factory_(factory) {}

  // A name other drivers can find with GetActor; a second live actor with it is an error.
  ActorCreator& SetName(std::string name, std::string ns = "") {
    options_.name = std::move(name);
    options_.ns = std::move(ns);
    return *this;
  }
  // Outlives its creator (otherwise the actor ends when its creator's job does).
  ActorCreator& SetDetached(bool detached = true) {
    options_.detached = detached;
    return *this;
  }
  // Resources held while the actor lives (default none, like Ray's actors).
  ActorCreator& SetResources(std::map<std::string, double> resources) {
    options_.resources = std::move(resources);
    return *this;
  }
  ActorCreator& SetResource(const std::string& name, double amount) {
    options_.resources[name] = amount;
    return *this;
  }
  // Which node it lives on (see lumen/scheduling.h); default: its creator's node while that
  // has the resources free, else the least-loaded node that has them.
  ActorCreator& SetSchedulingStrategy(SchedulingStrategy strategy) {
    options_.strategy = std::move(strategy);
    return *this;
  }
  // Times the actor is re-created (its factory run again) after its process dies.
  ActorCreator& SetMaxRestarts(int max_restarts) {
    options_.max_restarts = max_restarts;
    return *this;
  }
  // Times a call is re-sent after the actor restarted (default 0: at-most-once).
  ActorCreator& SetMaxTaskRetries(int max_task_retries) {
    options_.max_task_retries = max_task_retries;
    return *this;
  }
  // Calls that may run at once on the actor's thread pool (default 1: one at a time, in order).
  ActorCreator& SetMaxConcurrency(int max_concurrency) {
    options_.max_concurrency = max_concurrency;
    return *this;
  }

  template <typename... A>
  ActorHandle<T> Remote(A&&... args) {
    return ActorHandle<T>(internal::CreateActor(
        internal::FunctionName(reinterpret_cast<const void*>(factory_)),
        internal::ArgumentPacker<P...>::Pack(std::forward<A>(args)...), options_));
  }

 private:
  T* (*factory_)(P...);
  internal::ActorOptions options_;
};

template <typename T, typename... P>
ActorCreator<T, P...> Actor(T* (*factory)(P...)) {
  return ActorCreator<T, P...>(factory);
}

// The live actor with this name, if any.
template <typename T>
std::optional<ActorHandle<T>> GetActor(const std::string& name, const std::string& ns = "") {
  std::string id = internal::FindNamedActor(name, ns);
  if (id.empty()) return std::nullopt;
  return ActorHandle<T>(std::move(id));
}

// Ends the actor's process; its pending and later calls fail with ActorDiedError.
template <typename T>
void Kill(const ActorHandle<T>& actor, bool no_restart = true) {
  internal::KillActor(actor.id(), no_restart);
}

// How many times the actor's process was re-created after it died (restarts so far).
template <typename T>
int NumRestarts(const ActorHandle<T>& actor) {
  return internal::ActorRestarts(actor.id());
}

// In an actor: true if this instance was created by a restart.
inline bool WasCurrentActorRestarted() { return internal::WasCurrentActorRestarted(); }

}  // namespace lumen
