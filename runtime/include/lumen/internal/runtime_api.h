// The type-erased runtime entry points that Lumen's public templates call. Implemented by the
// core worker (runtime/core_worker.cc); users never call these directly. Functions throw the
// exceptions of lumen/errors.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lumen/scheduling.h"

namespace lumen::internal {

// Serialized bytes that stay valid while the Buffer lives (inline copy or store mapping).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const char* data() const = 0;
  virtual size_t size() const = 0;
  // The bytes are an object in the node's shared-memory store, pinned while this Buffer lives:
  // a value read from them may point into them if it keeps the Buffer alive.
  virtual bool in_store() const { return false; }
};

// What a value read from `buffer` holds to point into it: the buffer if its bytes are in the
// store, else null (such a value copies what it keeps).
inline std::shared_ptr<const void> KeeperOf(const std::shared_ptr<Buffer>& buffer) {
  return buffer->in_store() ? buffer : nullptr;
}

// Writes a value of a known size into memory the runtime provides.
struct ValueWriter {
  size_t size = 0;
  std::function<void(char*)> write;
};

struct RefParts {
  std::string object_id;
  std::string owner_address;
};

struct TaskArgument {
  bool is_ref = false;
  std::string bytes;                // the serialized value, when !is_ref
  std::vector<RefParts> contained;  // refs serialized inside `bytes`
  std::string object_id;            // when is_ref
  std::string owner_address;        // when is_ref
};

// Collects the refs serialized on this thread while it lives (the refs inside a value), so that
// whoever holds the value can hold them too. Captures nest: the innermost one collects.
class RefCapture {
 public:
  RefCapture();
  ~RefCapture();
  RefCapture(const RefCapture&) = delete;
  RefCapture& operator=(const RefCapture&) = delete;
  void Add(const std::string& object_id, const std::string& owner_address);
  // The distinct refs collected so far; later ones are collected anew.
  std::vector<RefParts> Take();
  // The capture active on this thread, or null.
  static RefCapture* Current();

 private:
  RefCapture* outer_;
  std::vector<RefParts> refs_;
};

struct TaskOptions {
  std::map<std::string, double> resources;  // empty: {CPU: 1}
  int max_retries = 3;
  bool retry_exceptions = false;
  SchedulingStrategy strategy;
};

struct ActorOptions {
  std::string name;
  std::string ns;
  bool detached = false;
  std::map<std::string, double> resources;  // held for the actor's lifetime; default none
  int max_restarts = 0;
  int max_task_retries = 0;
  int max_concurrency = 1;
  SchedulingStrategy strategy;
};

// ---- Functions ---------------------------------------------------------------
struct ArgView {
  const char* data;
  size_t size;
  // Set when the bytes are in the store: keeps them valid and pinned (see Buffer::in_store).
  std::shared_ptr<const void> keeper;
};
using Invoker = std::function<ValueWriter(const std::vector<ArgView>& args)>;

// Creates an actor's instance from its factory's arguments.
using FactoryInvoker = std::function<std::shared_ptr<void>(const std::vector<ArgView>& args)>;
// Calls a method on an actor's instance.
using MethodInvoker = std::function<ValueWriter(void* instance, const std::vector<ArgView>& args)>;

// Called at static-initialization time by LUMEN_REMOTE.
void RegisterFunction(const std::string& name, const void* key, size_t num_args, Invoker invoker);
void RegisterFactory(const std::string& name, const void* key, size_t num_args,
                     FactoryInvoker invoker);
// `key` identifies a member function pointer: its bytes and type name.
void RegisterMethod(const std::string& name, const std::string& key, size_t num_args,
                    MethodInvoker invoker);
// The name LUMEN_REMOTE registered for `key`; throws lumen::Error naming the fix if none.
const std::string& FunctionName(const void* key);
const std::string& MethodName(const std::string& key);

// ---- Objects and tasks ---------------------------------------------------------
RefParts SubmitTask(const std::string& function, std::vector<TaskArgument> args,
                    const TaskOptions& options);
RefParts PutObject(const ValueWriter& writer);
// timeout_ms < 0 waits forever.
// The refs are borrowed for the call only.
std::vector<std::shared_ptr<Buffer>> GetObjects(const std::vector<const RefParts*>& refs,
                                                int64_t timeout_ms);
std::vector<bool> WaitObjects(const std::vector<const RefParts*>& refs, int num_returns,
                              int64_t timeout_ms, bool fetch_local);

// ---- Actors ---------------------------------------------------------------------
// Returns the new actor's id; throws lumen::Error if the name is taken.
std::string CreateActor(const std::string& factory, std::vector<TaskArgument> args,
                        const ActorOptions& options);
RefParts SubmitActorTask(const std::string& actor_id, const std::string& method,
                         std::vector<TaskArgument> args);
// The id of the live actor with that name, or "".
std::string FindNamedActor(const std::string& name, const std::string& ns);
void KillActor(const std::string& actor_id, bool no_restart);
bool WasCurrentActorRestarted();
// How many times the actor was restarted so far.
int ActorRestarts(const std::string& actor_id);
// Total resources of the cluster's live nodes.
std::map<std::string, double> ClusterResources();

// ---- Reference counting (called by ObjectRef) ------------------------------------
void AddLocalReference(const std::string& object_id, const std::string& owner_address);
void RemoveLocalReference(const std::string& object_id);
// A ref is being serialized into a value that may outlive this process's references.
void OnReferenceSerialized(const std::string& object_id, const std::string& owner_address);
bool RuntimeActive();

}  // namespace lumen::internal
