// The DFS's client library: what the shell, the tests and the benchmarks use to start and stop
// the store and to upload, read, list and delete artifacts. Needs lumen::Init().
//
//   absl::StatusOr<std::unique_ptr<Client>> dfs = Client::Connect();
//   (*dfs)->UploadBytes("notes", "hello", /*update=*/false);
//   absl::StatusOr<std::string> text = (*dfs)->GetBytes("notes");
//
// Chunks go straight between this process and the storage nodes, in batches of consecutive
// chunks (4 MiB): each batch is put in the object store once and its ref passed to every storage
// node that holds a replica of one of its chunks, one call per node; reads take a run of chunks
// from one replica in one call. Two batches are in flight at once, so a large file never sits
// whole in memory. A replica that fails is replaced (the
// name node picks another node) and a corrupt or missing one is skipped (and reported) on
// reads. Reads see one whole committed version: when a version is replaced under a reader, the
// read starts again on the new one. While the name node restarts, reads fall back to the
// metadata log in the KV store and to asking every storage node.
//
// Thread-compatible: one Client per thread (the actor handles it caches are not guarded).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dfs/messages.h"
#include "dfs/name_node.h"
#include "dfs/storage_node.h"
#include "lumen/lumen.h"

namespace lumen::dfs {

// Called with bytes done and bytes in all, after every chunk.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

// ---- Starting and stopping the store (`lumen dfs start|stop`) ----------------------------

struct StartOptions {
  // The layout asked for; what is left unset is a kept store's (see StartStore), or else
  // StoreConfig's default.
  std::optional<int> storage_nodes;
  std::optional<int> replication;
  std::optional<uint64_t> chunk_size;
  int64_t scrub_interval_ms = StoreConfig().scrub_interval_ms;
  // Refuse a kept store instead of starting it again (for a benchmark: it purges its store).
  bool fresh_only = false;
  // Per storage node: bytes of recently used chunks kept in memory.
  uint64_t cache_bytes = uint64_t{32} << 20;
};
struct StartedStore {
  StoreConfig config;
  bool kept = false;  // started again on the data that StopStore without purge kept
  // What it started: all of the store, or what of a kept store did not run.
  std::vector<int> storage_started;
  bool name_node_started = false;
};
// Creates the storage nodes and the name node, and waits until the name node is ready.
// A store stopped with its data kept starts again with its own layout (storage nodes,
// replication, chunk size): fewer storage nodes would strand the replicas of those left out.
// Of a kept store that partly runs (after its head restarted on its session, the name node
// comes back and the storage nodes do not), only the parts that do not run are started.
// ALREADY_EXISTS if the whole store runs; INVALID_ARGUMENT for a bad configuration;
// FAILED_PRECONDITION if `options` ask a kept store for another layout, or if `fresh_only`
// finds one.
[[nodiscard]] absl::StatusOr<StartedStore> StartStore(const StartOptions& options);
// Kills the name node and the storage nodes. With `purge`, the storage nodes first delete their
// chunks and the metadata log goes too; otherwise a later StartStore finds the data again.
// Returns how many actors it stopped.
[[nodiscard]] absl::StatusOr<int> StopStore(bool purge);

class Client {
 public:
  // NOT_FOUND with what to do if the store is not running.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Client>> Connect();

  const StoreConfig& config() const { return config_; }

  // Uploads `size` bytes read from `source` as a new artifact, or as a new version (`update`).
  [[nodiscard]] absl::StatusOr<ArtifactInfo> Upload(const std::string& name, std::istream& source,
                                                    uint64_t size, bool update,
                                                    const Progress& progress = nullptr);
  [[nodiscard]] absl::StatusOr<ArtifactInfo> UploadBytes(const std::string& name,
                                                         const std::string& content, bool update);
  // The content of the current version; FAILED_PRECONDITION if it is over `max_bytes`.
  [[nodiscard]] absl::StatusOr<std::string> GetBytes(const std::string& name,
                                                     uint64_t max_bytes = uint64_t{64} << 20,
                                                     ArtifactInfo* info = nullptr);
  // Streams the current version: `begin` is called with the version being read (again, with a
  // newer version, if it is replaced while being read: then start over), `sink` with each
  // chunk's bytes in order, after their checksum is verified.
  using ReadBegin = std::function<absl::Status(const ArtifactInfo&)>;
  using ReadSink = std::function<absl::Status(std::string_view)>;
  [[nodiscard]] absl::StatusOr<ArtifactInfo> Read(const std::string& name, const ReadBegin& begin,
                                                  const ReadSink& sink,
                                                  const Progress& progress = nullptr);
  // Writes the current version to `path`: a regular file through a temporary file renamed at
  // the end; anything else (a device, a FIFO, a symbolic link) in place.
  [[nodiscard]] absl::StatusOr<ArtifactInfo> Download(const std::string& name,
                                                      const std::string& path,
                                                      const Progress& progress = nullptr);
  // Writes the current version to `out` (such as standard output). A stream cannot start over:
  // if a newer version replaces the artifact after the first bytes went out, ABORTED.
  [[nodiscard]] absl::StatusOr<ArtifactInfo> Download(const std::string& name, std::ostream& out,
                                                      const Progress& progress = nullptr);
  [[nodiscard]] absl::Status Delete(const std::string& name);
  [[nodiscard]] absl::StatusOr<std::vector<ArtifactInfo>> List(const std::string& name = "");
  // From the name node; if it does not answer, what the storage nodes say and its state as
  // "not answering".
  [[nodiscard]] absl::StatusOr<StoreStatus> Status();

  // Fault injection: kills a storage node's actor, or starts it again on its folder; then
  // waits (up to ten seconds) until the name node sees it dead, or alive.
  [[nodiscard]] absl::Status Kill(int node);
  [[nodiscard]] absl::Status Revive(int node);
  // True if the node can die without leaving a chunk with no live replica.
  [[nodiscard]] absl::StatusOr<bool> CanLose(int node);

 private:
  Client(StoreConfig config, ActorHandle<NameNode> name_node, uint64_t cache_bytes);
  // Runs a name node call, retried while the name node restarts (an idempotent call only).
  template <typename R, typename Call>
  absl::StatusOr<R> CallNameNode(const Call& call, bool retry, int64_t timeout_ms = 60000);
  std::optional<ActorHandle<StorageNode>> Storage(int node, bool refresh = false);
  // The current version for reading: from the name node, else from the log in the KV store.
  absl::StatusOr<ArtifactInfo> LookupForRead(const std::string& name);
  // Download into a stream that cannot start over; `open` readies it once the version to read
  // is known; `what` names it in errors.
  absl::StatusOr<ArtifactInfo> StreamTo(const std::string& name, std::ostream& out,
                                        const std::string& what,
                                        const std::function<absl::Status()>& open,
                                        const Progress& progress);
  // Reads every chunk of `info` in order into `sink`, then checks the whole checksum.
  absl::Status ReadChunks(const ArtifactInfo& info, const ReadSink& sink, const Progress& progress);

  const StoreConfig config_;
  ActorHandle<NameNode> name_node_;
  const uint64_t cache_bytes_;
  std::vector<std::optional<ActorHandle<StorageNode>>> storage_;
};

// The status an actor call's exception carried: the DFS's own errors keep their code;
// ActorDiedError is UNAVAILABLE; GetTimeoutError is DEADLINE_EXCEEDED.
absl::Status StatusFromError(const Error& error);

// "storage.2", "dfs.storage.2" or "2" -> 2; INVALID_ARGUMENT otherwise or if >= `num_nodes`.
absl::StatusOr<int> ParseNodeName(const std::string& text, int num_nodes);

}  // namespace lumen::dfs
