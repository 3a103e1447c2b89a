// Starting and stopping the runtime, and the object API: Put, Get, Wait.
//
//   lumen::Init(argc, argv);             // --address / LUMEN_ADDRESS, else local or embedded
//   auto ref = lumen::Put(std::vector<double>(1 << 20, 1.0));
//   std::shared_ptr<std::vector<double>> v = lumen::Get(ref);
//   auto [ready, unready] = lumen::Wait(refs, /*num_returns=*/3, /*timeout_ms=*/-1);
//   lumen::Shutdown();
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lumen/errors.h"
#include "lumen/internal/runtime_api.h"
#include "lumen/internal/serialization.h"
#include "lumen/object_ref.h"

namespace lumen {

struct InitOptions {
  // Head address host:port. Empty: $LUMEN_ADDRESS, else the cluster running on this machine,
  // else an embedded cluster that lives as long as this program.
  std::string address;
  // Cluster token. Empty: $LUMEN_TOKEN, else the local session folder's token.
  std::string token;
  // Where session folders live. Empty: $LUMEN_TEMP_DIR, else /tmp/lumen.
  std::string temp_dir;
  // For an embedded cluster: CPUs (default: this machine's) and store size (default 2 GiB).
  int num_cpus = -1;
  int64_t object_store_memory = 0;
  std::map<std::string, double> resources;
};

// Connects this program to a cluster. Reads --address=, --token= and --temp-dir= from argv.
// In a worker process started by a node manager it serves tasks and never returns.
void Init(int argc, char** argv);
void Init(const InitOptions& options = {});
// Disconnects; stops the embedded cluster if Init started one. Safe to call twice.
void Shutdown();
bool IsInitialized();

// Where this process runs: its node's id (as `lumen status` shows it) and that node's session
// folder, where an actor may keep data on the node's disk.
struct RuntimeContext {
  std::string node_id;
  std::string session_dir;
};
RuntimeContext GetRuntimeContext();

// Total resources of the cluster's live nodes, e.g. {{"CPU", 8}, {"GPU", 1}}.
inline std::map<std::string, double> ClusterResources() { return internal::ClusterResources(); }

// Stores `value` in the cluster and returns a ref to it. Large values go to the node's
// shared-memory store with one copy; throws ObjectStoreFullError if it cannot make room.
template <typename T>
ObjectRef<T> Put(const T& value) {
  internal::ValueWriter writer;
  writer.size = internal::SerializedSize(value);
  writer.write = [&value, size = writer.size](char* dst) {
    internal::SerializeInto(value, dst, size);
  };
  return ObjectRef<T>(internal::PutObject(writer));
}

namespace internal {
// A value read from the store may point into it (lumen::Array) and then keeps `buffer` alive.
template <typename T>
std::shared_ptr<T> DecodeValue(const std::shared_ptr<Buffer>& buffer) {
  auto value = std::make_shared<T>();
  try {
    DeserializeFrom(buffer->data(), buffer->size(), *value, KeeperOf(buffer));
  } catch (const std::exception& e) {
    throw Error(std::string("lumen::Get: the object's bytes do not hold the requested type (") +
                e.what() + ")");
  }
  return value;
}
}  // namespace internal

// Waits for the object and returns its value: a fresh copy, except for the elements of the
// lumen::Arrays in a large value, which are read in place from the store (see lumen/array.h).
// Throws TaskError if the task that makes it threw, GetTimeoutError after timeout_ms (< 0: no
// limit), and the system errors of lumen/errors.h.
template <typename T>
std::shared_ptr<T> Get(const ObjectRef<T>& ref, int64_t timeout_ms = -1) {
  auto buffers = internal::GetObjects({&ref.parts()}, timeout_ms);
  return internal::DecodeValue<T>(buffers[0]);
}

template <typename T>
std::vector<std::shared_ptr<T>> Get(const std::vector<ObjectRef<T>>& refs,
                                    int64_t timeout_ms = -1) {
  std::vector<const internal::RefParts*> parts;
  parts.reserve(refs.size());
  for (const auto& ref : refs) parts.push_back(&ref.parts());
  auto buffers = internal::GetObjects(parts, timeout_ms);
  std::vector<std::shared_ptr<T>> values;
  values.reserve(buffers.size());
  for (const auto& buffer : buffers) values.push_back(internal::DecodeValue<T>(buffer));
  return values;
}

template <typename T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;
  std::vector<ObjectRef<T>> unready;
};

// Returns once num_returns of `refs` are ready or timeout_ms passed (< 0: no limit); ready
// refs keep their order. Never throws for a failed task: its ref counts as ready.
template <typename T>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& refs, int num_returns, int64_t timeout_ms = -1,
                   bool fetch_local = true) {
  std::vector<const internal::RefParts*> parts;
  parts.reserve(refs.size());
  for (const auto& ref : refs) parts.push_back(&ref.parts());
  std::vector<bool> ready = internal::WaitObjects(parts, num_returns, timeout_ms, fetch_local);
  WaitResult<T> result;
  for (size_t i = 0; i < refs.size(); ++i) {
    (ready[i] ? result.ready : result.unready).push_back(refs[i]);
  }
  return result;
}

}  // namespace lumen
