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

namespace lumen::internal {

// Serialized bytes that stay valid while the Buffer lives (inline copy or store mapping).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const char* data() const = 0;
  virtual size_t size() const = 0;
};

// Writes a value of a known size into memory the runtime provides.
struct ValueWriter {
  size_t size = 0;
  std::function<void(char*)> write;
};

struct TaskArgument {
  bool is_ref = false;
  std::string bytes;          // the serialized value, when !is_ref
  std::string object_id;      // when is_ref
  std::string owner_address;  // when is_ref
};

struct TaskOptions {
  std::map<std::string, double> resources;  // empty: {CPU: 1}
  int max_retries = 3;
  bool retry_exceptions = false;
};

struct RefParts {
  std::string object_id;
  std::string owner_address;
};

// ---- Functions ---------------------------------------------------------------
struct ArgView {
  const char* data;
  size_t size;
};
using Invoker = std::function<ValueWriter(const std::vector<ArgView>& args)>;

// Called at static-initialization time by LUMEN_REMOTE.
void RegisterFunction(const std::string& name, const void* key, size_t num_args, Invoker invoker);
// The name LUMEN_REMOTE registered for `key`; throws lumen::Error naming the fix if none.
const std::string& FunctionName(const void* key);

// ---- Objects and tasks ---------------------------------------------------------
RefParts SubmitTask(const std::string& function, std::vector<TaskArgument> args,
                    const TaskOptions& options);
RefParts PutObject(const ValueWriter& writer);
// timeout_ms < 0 waits forever.
std::vector<std::shared_ptr<Buffer>> GetObjects(const std::vector<RefParts>& refs,
                                                int64_t timeout_ms);
std::vector<bool> WaitObjects(const std::vector<RefParts>& refs, int num_returns,
                              int64_t timeout_ms, bool fetch_local);

// ---- Reference counting (called by ObjectRef) ------------------------------------
void AddLocalReference(const std::string& object_id, const std::string& owner_address);
void RemoveLocalReference(const std::string& object_id);
// A ref is being serialized into a value that may outlive this process's references.
void OnReferenceSerialized(const std::string& object_id, const std::string& owner_address);
bool RuntimeActive();

}  // namespace lumen::internal
