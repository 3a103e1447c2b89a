#include "dfs/client.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "dfs/checksum.h"
#include "dfs/kv_store.h"
#include "dfs/metadata_log.h"

namespace lumen::dfs {
namespace {

// Chunks travel in batches: consecutive chunks put in the object store as one object and
// written or read by one call per storage node, so that the runtime's cost per object and per
// call (a store create and seal, a pin, a task) is paid once per batch instead of per chunk.
// Batches in flight at once: enough bytes to keep the storage nodes busy, and a bound that
// does not grow with the file (they sit in the object store while in flight). A 1 GiB
// download of 1 MiB chunks ran about 15 % faster with batches of 8 MiB, two in flight, than
// with batches of 4 MiB; the upload, held back by the disk, did not move.
constexpr uint64_t kBatchBytes = uint64_t{8} << 20;
constexpr uint64_t kWindowBytes = uint64_t{16} << 20;
constexpr uint64_t kMaxBatch = 64;

// Chunks per batch.
uint64_t BatchFor(uint64_t chunk_size) {
  return std::clamp<uint64_t>(kBatchBytes / std::max<uint64_t>(chunk_size, 1), 1, kMaxBatch);
}

size_t BatchesInFlight(uint64_t chunk_size) {
  return std::max<size_t>(2, kWindowBytes / (BatchFor(chunk_size) * chunk_size));
}

constexpr int64_t kChunkCallMs = 120000;
// A name node call that waits for a restart gives up after this long.
constexpr absl::Duration kNameNodeRetryFor = absl::Seconds(90);
// Reads start over at most this often when versions keep replacing each other.
constexpr int kReadRestarts = 20;
constexpr int64_t kFallbackLookupMs = 5000;
constexpr char kNotRunning[] = "the DFS is not running; start it with `lumen dfs start`";

absl::StatusOr<StoreConfig> LoadConfig(KvStore& kv) {
  auto stored = kv.Get("config");
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return absl::NotFoundError(kNotRunning);
  return DecodeConfig(**stored);
}

// The KV key of storage node `node`'s home: the cluster node whose disk holds its folder.
std::string HomeKey(int node) { return absl::StrCat("home/", node); }

ActorHandle<StorageNode> CreateStorageActor(int node, const SchedulingStrategy& where,
                                            uint64_t cache_bytes, int64_t scrub_interval_ms) {
  return Actor(StorageNode::Create)
      .SetName(StorageActorName(node))
      .SetDetached()
      .SetMaxConcurrency(8)
      .SetSchedulingStrategy(where)
      .Remote(node, std::string(), cache_bytes, scrub_interval_ms);
}

// Waits for a storage node's first answer.
absl::StatusOr<StorageReport> AwaitStorage(const ActorHandle<StorageNode>& storage, int node,
                                           int64_t timeout_ms) {
  try {
    return *Get(storage.Task(&StorageNode::Ping).Remote(), timeout_ms);
  } catch (const Error& e) {
    return absl::Status(StatusFromError(e).code(),
                        absl::StrCat(StorageDisplayName(node), " did not start: ", e.what()));
  }
}

// Starts the storage nodes `nodes` and waits until each answers. A storage node goes back to
// its home while that cluster node lives, since its chunks are on that node's disk: SPREAD
// alone would take another turn and start it empty elsewhere, stranding its replicas. One
// without a home, or whose home is gone (with its disk), goes where SPREAD puts it, spreading
// the storage nodes over the cluster's nodes, and that becomes its home.
absl::StatusOr<std::vector<ActorHandle<StorageNode>>> StartStorageNodes(
    KvStore& kv, const std::vector<int>& nodes, uint64_t cache_bytes, int64_t scrub_interval_ms) {
  std::vector<std::optional<std::string>> homes;
  for (int node : nodes) {
    auto home = kv.Get(HomeKey(node));
    if (!home.ok()) return home.status();
    homes.push_back(*std::move(home));
  }
  auto create = [&](size_t i, bool at_home) -> absl::StatusOr<ActorHandle<StorageNode>> {
    try {
      return CreateStorageActor(
          nodes[i],
          at_home ? SchedulingStrategy::NodeAffinity(*homes[i]) : SchedulingStrategy::Spread(),
          cache_bytes, scrub_interval_ms);
    } catch (const Error& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start ", StorageDisplayName(nodes[i]), ": ", e.what()));
    }
  };
  // All created before any is awaited: they start in parallel.
  std::vector<ActorHandle<StorageNode>> started;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto storage = create(i, homes[i].has_value());
    if (!storage.ok()) return storage.status();
    started.push_back(*std::move(storage));
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto report = AwaitStorage(started[i], nodes[i], 60000);
    if (!report.ok() && homes[i].has_value() &&
        absl::StrContains(report.status().message(), "hard node affinity")) {
      auto elsewhere = create(i, /*at_home=*/false);
      if (!elsewhere.ok()) return elsewhere.status();
      started[i] = *std::move(elsewhere);
      report = AwaitStorage(started[i], nodes[i], 60000);
    }
    if (!report.ok()) return report.status();
    if (homes[i] != report->cluster_node) {
      if (auto status = kv.Put(HomeKey(nodes[i]), report->cluster_node); !status.ok()) {
        return status;
      }
    }
  }
  return started;
}

template <typename T>
std::optional<ActorHandle<T>> FindActor(const std::string& name) {
  try {
    return GetActor<T>(name);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// True if storage node `node` runs and answers (one on its way out after a kill does not).
bool StorageAnswers(int node) {
  auto storage = FindActor<StorageNode>(StorageActorName(node));
  if (!storage.has_value()) return false;
  try {
    Get(storage->Task(&StorageNode::Ping).Remote(), 2000);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Has the name node look at storage node `node` now, and waits (up to ten seconds) until it
// sees it alive, or dead. A name node that does not answer notices once it does.
void AwaitSeen(ActorHandle<NameNode>& name_node, int node, bool alive) {
  name_node.Task(&NameNode::Probe).Remote(node);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    try {
      const StoreStatus status = *Get(name_node.Task(&NameNode::Status).Remote(), 5000);
      if (status.storage.at(static_cast<size_t>(node)).alive == alive) return;
    } catch (const std::exception&) {
      return;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

// Fills `size` bytes of `buffer` from `source` block by block, each block hashed into `whole` and
// into the chunk's own checksum while it is still in the cache. Returns how many bytes it read.
size_t ReadAndSum(std::istream& source, char* buffer, size_t size, ChecksumStream& whole,
                  uint64_t* checksum) {
  constexpr size_t kBlock = size_t{64} << 10;
  ChecksumStream own;
  size_t done = 0;
  while (done < size) {
    const size_t want = std::min(kBlock, size - done);
    source.read(buffer + done, static_cast<std::streamsize>(want));
    const auto got = static_cast<size_t>(source.gcount());
    own.Update(buffer + done, got);
    whole.Update(buffer + done, got);
    done += got;
    if (got < want) break;
  }
  *checksum = own.Digest();
  return done;
}

}  // namespace

absl::Status StatusFromError(const Error& error) {
  if (const auto* task = dynamic_cast<const TaskError*>(&error)) {
    return StatusFromRemote(task->remote_message());
  }
  if (dynamic_cast<const ActorDiedError*>(&error) != nullptr) {
    return absl::UnavailableError(error.what());
  }
  if (dynamic_cast<const GetTimeoutError*>(&error) != nullptr) {
    return absl::DeadlineExceededError(error.what());
  }
  return absl::UnknownError(error.what());
}

absl::StatusOr<int> ParseNodeName(const std::string& text, int num_nodes) {
  absl::string_view digits(text);
  if (!absl::ConsumePrefix(&digits, "dfs.storage.")) absl::ConsumePrefix(&digits, "storage.");
  int node = -1;
  if (!absl::SimpleAtoi(digits, &node) || node < 0 || node >= num_nodes) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a storage node; they are ",
                                                   StorageDisplayName(0), " to ",
                                                   StorageDisplayName(num_nodes - 1)));
  }
  return node;
}

// ---- Starting and stopping -----------------------------------------------------------------

absl::StatusOr<StartedStore> StartStore(const StartOptions& options) {
  std::unique_ptr<KvStore> kv = ClusterKv();
  auto kept = LoadConfig(*kv);
  if (!kept.ok() && !absl::IsNotFound(kept.status())) return kept.status();
  StartedStore started;
  started.kept = kept.ok();
  StoreConfig& config = started.config;
  std::optional<ActorHandle<NameNode>> name_node = FindActor<NameNode>(kNameNodeActor);
  if (started.kept) {
    config = *kept;
  } else {
    config.storage_nodes = options.storage_nodes.value_or(config.storage_nodes);
    config.replication = options.replication.value_or(config.replication);
    config.chunk_size = options.chunk_size.value_or(config.chunk_size);
  }
  config.scrub_interval_ms = options.scrub_interval_ms;
  if (config.storage_nodes < 1 || config.storage_nodes > 256) {
    return absl::InvalidArgumentError("--storage-nodes must be between 1 and 256");
  }
  if (config.replication < 1 || config.replication > config.storage_nodes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replication must be between 1 and the number of storage nodes (",
                     config.storage_nodes, "), not ", config.replication));
  }
  if (config.chunk_size < 4096 || config.chunk_size > (uint64_t{64} << 20)) {
    return absl::InvalidArgumentError("--chunk-size must be between 4096 and 67108864 bytes");
  }
  // A kept store of which only some parts run (after its head restarted on its session, the
  // name node comes back and the storage nodes do not) gets the others started; a whole one is
  // already running.
  std::vector<int> missing;
  for (int node = 0; node < config.storage_nodes; ++node) {
    if (!StorageAnswers(node)) missing.push_back(node);
  }
  const bool parts_run =
      name_node.has_value() || missing.size() < static_cast<size_t>(config.storage_nodes);
  if (parts_run && (!started.kept || missing.empty() || options.fresh_only)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "the DFS is already running (its ", name_node.has_value() ? "name node" : "storage nodes",
        " answer", name_node.has_value() ? "s" : "", "); stop it with `lumen dfs stop`"));
  }
  if (started.kept) {
    const std::string layout =
        absl::StrCat("--storage-nodes=", kept->storage_nodes, " --replication=", kept->replication,
                     " --chunk-size=", kept->chunk_size);
    if (options.fresh_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("a stopped DFS keeps its data on this cluster (", layout,
                       "); `lumen dfs stop --purge` deletes it"));
    }
    if (options.storage_nodes.value_or(kept->storage_nodes) != kept->storage_nodes ||
        options.replication.value_or(kept->replication) != kept->replication ||
        options.chunk_size.value_or(kept->chunk_size) != kept->chunk_size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a DFS keeps its data on this cluster with ", layout,
          "; start it with that layout (or without those flags), or delete it first with "
          "`lumen dfs stop --purge`"));
    }
  }
  started.storage_started = missing;
  started.name_node_started = !name_node.has_value();
  if (parts_run) {
    config.scrub_interval_ms = kept->scrub_interval_ms;  // what is started matches what runs
  } else if (auto status = kv->Put("config", Encode(config)); !status.ok()) {
    return status;
  }
  auto storage = StartStorageNodes(*kv, missing, options.cache_bytes, config.scrub_interval_ms);
  if (!storage.ok()) return storage.status();
  if (!name_node.has_value()) {
    try {
      name_node = Actor(NameNode::Create)
                      .SetName(kNameNodeActor)
                      .SetDetached()
                      .SetMaxRestarts(-1)
                      .SetMaxConcurrency(8)
                      .Remote();
    } catch (const Error& e) {
      return absl::FailedPreconditionError(absl::StrCat("cannot create the name node: ", e.what()));
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    absl::Status status;
    try {
      const StoreStatus state = *Get(name_node->Task(&NameNode::Status).Remote(), 10000);
      if (state.name_node_state == "ready") {
        // A name node that ran meanwhile sees the storage nodes started under it at once.
        if (!started.name_node_started) {
          for (int node : started.storage_started) AwaitSeen(*name_node, node, /*alive=*/true);
        }
        return started;
      }
      status = absl::UnavailableError("the name node is " + state.name_node_state);
    } catch (const Error& e) {
      status = StatusFromError(e);
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the name node did not become ready within a minute: ", status.message()));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::StatusOr<int> StopStore(bool purge) {
  std::unique_ptr<KvStore> kv = ClusterKv();
  auto config = LoadConfig(*kv);
  const int nodes = config.ok() ? config->storage_nodes : 256;
  int stopped = 0;
  std::vector<std::string> killed;
  try {
    // The name node first, so that it starts no repair while the storage nodes go.
    if (auto name_node = GetActor<NameNode>(kNameNodeActor)) {
      Kill(*name_node);
      killed.emplace_back(kNameNodeActor);
      ++stopped;
    }
    for (int node = 0; node < nodes; ++node) {
      auto storage = GetActor<StorageNode>(StorageActorName(node));
      if (!storage.has_value()) continue;
      if (purge) {
        try {
          Get(storage->Task(&StorageNode::Purge).Remote(), 30000);
        } catch (const Error&) {
          // Its folder on this machine is removed below; elsewhere it stays.
        }
      }
      Kill(*storage);
      killed.push_back(StorageActorName(node));
      ++stopped;
    }
  } catch (const Error& e) {
    return StatusFromError(e);
  }
  // Their names are free (for a new `lumen dfs start`) once the head has heard of the deaths.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  for (const std::string& name : killed) {
    while (FindActor<StorageNode>(name).has_value() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  if (purge) {
    if (auto status = MetadataLog(kv.get()).Clear(); !status.ok()) return status;
    if (auto status = kv->Delete("config"); !status.ok()) return status;
    auto homes = kv->List("home/");
    if (!homes.ok()) return homes.status();
    for (const std::string& key : *homes) {
      if (auto status = kv->Delete(key); !status.ok()) return status;
    }
    std::error_code ignored;
    std::filesystem::remove_all(GetRuntimeContext().session_dir + "/dfs", ignored);
  }
  return stopped;
}

// ---- Client -----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect() {
  std::unique_ptr<KvStore> kv = ClusterKv();
  auto config = LoadConfig(*kv);
  if (!config.ok()) return config.status();
  auto name_node = FindActor<NameNode>(kNameNodeActor);
  if (!name_node.has_value()) return absl::NotFoundError(kNotRunning);
  return std::unique_ptr<Client>(new Client(*config, *name_node, uint64_t{32} << 20));
}

Client::Client(StoreConfig config, ActorHandle<NameNode> name_node, uint64_t cache_bytes)
    : config_(config),
      name_node_(std::move(name_node)),
      cache_bytes_(cache_bytes),
      storage_(static_cast<size_t>(config.storage_nodes)) {}

template <typename R, typename Call>
absl::StatusOr<R> Client::CallNameNode(const Call& call, bool retry, int64_t timeout_ms) {
  const absl::Time give_up = absl::Now() + kNameNodeRetryFor;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    absl::Status status;
    try {
      return *Get(call(name_node_), timeout_ms);
    } catch (const Error& e) {
      status = StatusFromError(e);
    }
    if (!retry || !absl::IsUnavailable(status) || absl::Now() + backoff > give_up) return status;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
    // A restarted name node keeps its actor; a stopped store has none.
    auto found = FindActor<NameNode>(kNameNodeActor);
    if (!found.has_value()) {
      return absl::UnavailableError(
          absl::StrCat("the DFS name node is gone (", status.message(), "); is the DFS stopped?"));
    }
    name_node_ = *found;
  }
}

std::optional<ActorHandle<StorageNode>> Client::Storage(int node, bool refresh) {
  if (node < 0 || node >= config_.storage_nodes) return std::nullopt;
  auto& slot = storage_[static_cast<size_t>(node)];
  if (!slot.has_value() || refresh) slot = FindActor<StorageNode>(StorageActorName(node));
  return slot;
}

absl::StatusOr<ArtifactInfo> Client::Upload(const std::string& name, std::istream& source,
                                            uint64_t size, bool update, const Progress& progress) {
  auto plan = CallNameNode<WritePlan>(
      [&](ActorHandle<NameNode>& nn) {
        return nn.Task(&NameNode::BeginWrite).Remote(name, size, update);
      },
      /*retry=*/true);
  if (!plan.ok()) return plan.status();
  const uint64_t write_id = plan->write_id;
  auto abort = [&](absl::Status status) {
    (void)CallNameNode<bool>(
        [&](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::Abort).Remote(write_id); },
        /*retry=*/false, 10000);
    return status;
  };

  // A chunk whose replicas are being written.
  struct Pending {
    ChunkInfo info;
    std::vector<int> tried;  // its placement, then replacements
    std::vector<int> written;
    size_t want = 0;
  };
  // One WriteChunks call: the batch's chunks (positions in it) that `node` stores.
  struct Call {
    int node = -1;
    std::vector<size_t> positions;
    ObjectRef<std::vector<std::string>> result;
  };
  // Consecutive chunks put in the store as one object.
  struct Batch {
    uint64_t first = 0;  // index of its first chunk
    std::vector<Pending> chunks;
    std::vector<uint64_t> offsets;  // of each chunk in `data`
    ObjectRef<ChunkBytes> data;
    std::vector<Call> calls;
  };
  std::vector<ChunkInfo> chunks(plan->placements.size());
  std::deque<Batch> window;
  std::string last_error;
  uint64_t done_bytes = 0;
  auto issue = [&](Batch& batch, int node, std::vector<size_t> positions) {
    auto storage = Storage(node);
    if (!storage.has_value()) {
      last_error = absl::StrCat(StorageDisplayName(node), " is not running");
      return;
    }
    std::vector<ChunkSlice> slices;
    for (size_t position : positions) {
      const ChunkInfo& info = batch.chunks[position].info;
      slices.push_back(ChunkSlice{info.id, info.checksum, batch.offsets[position], info.size});
    }
    auto result = storage->Task(&StorageNode::WriteChunks).Remote(slices, batch.data);
    batch.calls.push_back(Call{node, std::move(positions), std::move(result)});
  };
  // Waits for the batch's calls and notes which replicas they wrote.
  auto collect = [&](Batch& batch) {
    for (Call& call : batch.calls) {
      try {
        const std::vector<std::string> errors = *Get(call.result, kChunkCallMs);
        for (size_t j = 0; j < call.positions.size(); ++j) {
          if (j < errors.size() && errors[j].empty()) {
            batch.chunks[call.positions[j]].written.push_back(call.node);
          } else {
            last_error = j < errors.size() ? std::string(StatusFromRemote(errors[j]).message())
                                           : "a storage node answered too few chunks";
          }
        }
      } catch (const Error& e) {
        last_error = e.what();
        Storage(call.node, /*refresh=*/true);
      }
    }
    batch.calls.clear();
  };
  // Waits for a batch's writes; replaces failed replicas with nodes the name node picks.
  auto finish = [&](Batch& batch) -> absl::Status {
    collect(batch);
    for (size_t position = 0; position < batch.chunks.size(); ++position) {
      Pending& chunk = batch.chunks[position];
      while (chunk.written.size() < chunk.want) {
        auto replacement = CallNameNode<int>(
            [&](ActorHandle<NameNode>& nn) {
              return nn.Task(&NameNode::ReplaceReplica).Remote(write_id, chunk.tried);
            },
            /*retry=*/true);
        if (!replacement.ok()) return replacement.status();
        if (*replacement < 0) break;
        chunk.tried.push_back(*replacement);
        issue(batch, *replacement, {position});
        collect(batch);
      }
      const uint64_t index = batch.first + position;
      if (chunk.written.empty()) {
        return absl::UnavailableError(
            absl::StrCat("chunk ", index, " of '", name,
                         "' could not be written to any storage node: ", last_error));
      }
      // In the order tried: the placement's first.
      for (int node : chunk.tried) {
        if (std::find(chunk.written.begin(), chunk.written.end(), node) != chunk.written.end()) {
          chunk.info.replicas.push_back(node);
        }
      }
      done_bytes += chunk.info.size;
      chunks[index] = std::move(chunk.info);
      if (progress) progress(done_bytes, size);
    }
    return absl::OkStatus();
  };

  ChecksumStream whole;
  const uint64_t num_chunks = plan->placements.size();
  const uint64_t per_batch = BatchFor(plan->chunk_size);
  // One buffer for every batch: Put has copied it into the store when it returns.
  std::vector<char> buffer;
  for (uint64_t first = 0; first < num_chunks; first += per_batch) {
    const uint64_t count = std::min(per_batch, num_chunks - first);
    const uint64_t offset = first * plan->chunk_size;
    buffer.resize(std::min(count * plan->chunk_size, size - offset));
    Batch batch;
    batch.first = first;
    for (uint64_t k = 0; k < count; ++k) {
      const uint64_t at = k * plan->chunk_size;
      const uint64_t length = std::min(plan->chunk_size, buffer.size() - at);
      Pending chunk;
      const size_t got =
          ReadAndSum(source, buffer.data() + at, length, whole, &chunk.info.checksum);
      if (got != length) {
        return abort(absl::DataLossError(
            absl::StrCat("the input ended after ", offset + at + got, " of ", size,
                         " bytes (did it change while being uploaded?)")));
      }
      chunk.info.id = ChunkId(write_id, first + k);
      chunk.info.size = length;
      chunk.tried = plan->placements[first + k];
      chunk.want = chunk.tried.size();
      batch.chunks.push_back(std::move(chunk));
      batch.offsets.push_back(at);
    }
    try {
      // Put once; every replica's storage node reads its chunks in place from the store.
      batch.data = Put(ChunkBytes(buffer.data(), buffer.size(), nullptr));
    } catch (const Error& e) {
      return abort(absl::ResourceExhaustedError(
          absl::StrCat("cannot put chunk ", first, " in the object store: ", e.what())));
    }
    // One call per storage node, for every chunk of the batch it holds a replica of.
    std::vector<std::pair<int, std::vector<size_t>>> per_node;
    for (size_t position = 0; position < batch.chunks.size(); ++position) {
      for (int node : batch.chunks[position].tried) {
        auto it = std::find_if(per_node.begin(), per_node.end(),
                               [node](const auto& entry) { return entry.first == node; });
        if (it == per_node.end()) it = per_node.insert(per_node.end(), {node, {}});
        it->second.push_back(position);
      }
    }
    for (auto& [node, positions] : per_node) issue(batch, node, std::move(positions));
    window.push_back(std::move(batch));
    while (window.size() >= BatchesInFlight(plan->chunk_size)) {
      if (auto status = finish(window.front()); !status.ok()) return abort(status);
      window.pop_front();
    }
  }
  while (!window.empty()) {
    if (auto status = finish(window.front()); !status.ok()) return abort(status);
    window.pop_front();
  }
  const uint64_t checksum = whole.Digest();
  return CallNameNode<ArtifactInfo>(
      [&](ActorHandle<NameNode>& nn) {
        return nn.Task(&NameNode::Commit).Remote(write_id, chunks, checksum);
      },
      /*retry=*/true);
}

absl::StatusOr<ArtifactInfo> Client::UploadBytes(const std::string& name,
                                                 const std::string& content, bool update) {
  std::istringstream source(content);
  return Upload(name, source, content.size(), update);
}

absl::StatusOr<ArtifactInfo> Client::LookupForRead(const std::string& name) {
  auto info = CallNameNode<ArtifactInfo>(
      [&](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::Lookup).Remote(name); },
      /*retry=*/false, kFallbackLookupMs);
  if (info.ok() ||
      !(absl::IsUnavailable(info.status()) || absl::IsDeadlineExceeded(info.status()))) {
    return info;
  }
  // The name node is restarting: the committed versions are in its log, and the replicas
  // where the commit put them (or, failing that, on any storage node).
  std::unique_ptr<KvStore> kv = ClusterKv();
  auto metadata = MetadataLog(kv.get()).Recover(/*read_only=*/true);
  if (!metadata.ok()) return info.status();
  const ArtifactInfo* committed = metadata->Find(name);
  if (committed == nullptr) {
    return absl::NotFoundError(absl::StrCat("artifact '", name, "' does not exist"));
  }
  return *committed;
}

absl::Status Client::ReadChunks(const ArtifactInfo& info, const ReadSink& sink,
                                const Progress& progress) {
  // Reads `count` consecutive chunks from `first` on: a batch from one node (ReadChunks), or
  // one chunk tried on each replica in turn (ReadChunk), which is also what the chunks of a
  // batch that failed fall back to.
  struct Fetch {
    size_t first = 0;
    size_t count = 1;
    int node = -1;
    std::optional<ObjectRef<ChunkBatch>> batch;
    std::vector<int> order;  // one chunk: replicas to try, the listed ones first
    size_t next = 0;
    std::optional<ObjectRef<ChunkBytes>> data;
  };
  const std::vector<ChunkInfo>& chunks = info.chunks;
  // Starts reading one chunk from the next replica in order; false when none is left.
  auto start = [this](Fetch& fetch, const ChunkInfo& chunk) {
    while (fetch.next < fetch.order.size()) {
      const int node = fetch.order[fetch.next++];
      auto storage = Storage(node);
      if (!storage.has_value()) continue;
      fetch.node = node;
      fetch.data = storage->Task(&StorageNode::ReadChunk).Remote(chunk.id);
      return true;
    }
    return false;
  };
  // A one-chunk fetch, started; `last` (a node that just failed) is tried last.
  auto single = [&](size_t index, int last) {
    const ChunkInfo& chunk = chunks[index];
    Fetch fetch;
    fetch.first = index;
    fetch.order = chunk.replicas;
    // Spread the reads of consecutive chunks over their replicas.
    if (!fetch.order.empty()) {
      std::rotate(fetch.order.begin(),
                  fetch.order.begin() + static_cast<std::ptrdiff_t>(index % fetch.order.size()),
                  fetch.order.end());
    }
    for (int node = 0; node < config_.storage_nodes; ++node) {
      if (std::find(chunk.replicas.begin(), chunk.replicas.end(), node) == chunk.replicas.end()) {
        fetch.order.push_back(node);
      }
    }
    if (auto it = std::find(fetch.order.begin(), fetch.order.end(), last);
        it != fetch.order.end()) {
      std::rotate(it, it + 1, fetch.order.end());
    }
    start(fetch, chunk);
    return fetch;
  };
  auto holds = [&chunks](size_t index, int node) {
    return std::find(chunks[index].replicas.begin(), chunks[index].replicas.end(), node) !=
           chunks[index].replicas.end();
  };
  const size_t per_batch = BatchFor(config_.chunk_size);
  const size_t window_chunks = per_batch * BatchesInFlight(config_.chunk_size);
  std::deque<Fetch> window;
  size_t in_window = 0;  // chunks
  size_t next_to_start = 0;
  size_t batches = 0;
  auto fill = [&] {
    while (in_window < window_chunks && next_to_start < chunks.size()) {
      // The listed replica that holds the longest run of the next chunks; the first of them
      // rotates, to spread the reads over the nodes.
      const std::vector<int>& replicas = chunks[next_to_start].replicas;
      int best = -1;
      size_t best_run = 0;
      for (size_t i = 0; i < replicas.size(); ++i) {
        const int node = replicas[(i + batches) % replicas.size()];
        size_t run = 0;
        while (run < per_batch && next_to_start + run < chunks.size() &&
               holds(next_to_start + run, node)) {
          ++run;
        }
        if (run > best_run) {
          best = node;
          best_run = run;
        }
      }
      std::optional<ActorHandle<StorageNode>> storage;
      if (best_run >= 2) storage = Storage(best);
      if (storage.has_value()) {
        Fetch fetch;
        fetch.first = next_to_start;
        fetch.count = best_run;
        fetch.node = best;
        std::vector<std::string> ids;
        for (size_t i = 0; i < best_run; ++i) ids.push_back(chunks[next_to_start + i].id);
        fetch.batch = storage->Task(&StorageNode::ReadChunks).Remote(ids);
        window.push_back(std::move(fetch));
        ++batches;
      } else {
        window.push_back(single(next_to_start, -1));
      }
      in_window += window.back().count;
      next_to_start += window.back().count;
    }
  };
  ChecksumStream whole;
  uint64_t done = 0;
  // Checks a chunk's bytes and passes them on; false if they are damaged.
  auto take = [&](const ChunkInfo& chunk, std::string_view data, absl::Status* status) {
    ChecksumStream with_chunk = whole;  // whole goes on only with good bytes
    if (data.size() != chunk.size || ChecksumAlso(data, with_chunk) != chunk.checksum) return false;
    whole = with_chunk;
    *status = sink(data);
    done += chunk.size;
    if (progress) progress(done, info.size);
    return true;
  };
  // The name node listed `node` for the chunk: it should ask that node what it holds.
  auto report = [&](const ChunkInfo& chunk, int node) {
    if (std::find(chunk.replicas.begin(), chunk.replicas.end(), node) != chunk.replicas.end()) {
      name_node_.Task(&NameNode::ReportBadReplica).Remote(chunk.id, node);
    }
  };
  for (size_t index = 0; index < chunks.size();) {
    fill();
    Fetch fetch = std::move(window.front());
    window.pop_front();
    in_window -= fetch.count;
    if (fetch.batch.has_value()) {
      size_t good = 0;
      try {
        // In place in the object store: the bytes are not copied out.
        std::shared_ptr<ChunkBatch> bytes = Get(*fetch.batch, kChunkCallMs);
        const std::string_view data = bytes->view();
        uint64_t offset = 0;
        for (; good < fetch.count; ++good) {
          const ChunkInfo& chunk = chunks[fetch.first + good];
          absl::Status status;
          if (offset > data.size() ||
              !take(chunk,
                    data.substr(offset, std::min<uint64_t>(chunk.size, data.size() - offset)),
                    &status)) {
            report(chunk, fetch.node);
            break;
          }
          if (!status.ok()) return status;
          offset += chunk.size;
        }
      } catch (const Error& e) {
        if (dynamic_cast<const ActorDiedError*>(&e) != nullptr) Storage(fetch.node, true);
        report(chunks[fetch.first], fetch.node);
      }
      index += good;
      // The rest, one by one from the other replicas first.
      for (size_t i = fetch.count; i > good; --i) {
        window.push_front(single(fetch.first + i - 1, fetch.node));
        ++in_window;
      }
      continue;
    }
    const ChunkInfo& chunk = chunks[index];
    std::string error = "no storage node is running";
    while (true) {
      if (!fetch.data.has_value()) {
        return absl::NotFoundError(absl::StrCat("chunk ", index, " of '", info.name,
                                                "' has no readable replica (", error, ")"));
      }
      try {
        std::shared_ptr<ChunkBytes> bytes = Get(*fetch.data, kChunkCallMs);
        absl::Status status;
        if (take(chunk, bytes->view(), &status)) {
          if (!status.ok()) return status;
          break;
        }
        error = absl::StrCat(StorageDisplayName(fetch.node), " returned damaged bytes");
      } catch (const Error& e) {
        error = e.what();
        if (dynamic_cast<const ActorDiedError*>(&e) != nullptr) Storage(fetch.node, true);
      }
      report(chunk, fetch.node);
      fetch.data.reset();
      start(fetch, chunk);
    }
    ++index;
  }
  if (whole.Digest() != info.checksum) {
    return absl::DataLossError(
        absl::StrCat("the content of '", info.name, "' does not match its checksum"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ArtifactInfo> Client::Read(const std::string& name, const ReadBegin& begin,
                                          const ReadSink& sink, const Progress& progress) {
  auto info = LookupForRead(name);
  for (int attempt = 0; attempt < kReadRestarts; ++attempt) {
    if (!info.ok()) return info.status();
    if (auto status = begin(*info); !status.ok()) return status;
    const absl::Status read = ReadChunks(*info, sink, progress);
    if (read.ok()) return info;
    // A replaced version's chunks are deleted: start over on the new one.
    auto now = LookupForRead(name);
    if (now.ok() && now->write_id == info->write_id) return read;
    info = std::move(now);
  }
  return absl::AbortedError(
      absl::StrCat("'", name, "' was replaced ", kReadRestarts, " times while it was being read"));
}

absl::StatusOr<std::string> Client::GetBytes(const std::string& name, uint64_t max_bytes,
                                             ArtifactInfo* info_out) {
  std::string content;
  auto info = Read(
      name,
      [&content, max_bytes, &name](const ArtifactInfo& info) {
        if (info.size > max_bytes) {
          return absl::FailedPreconditionError(absl::StrCat(
              "'", name, "' is ", info.size, " bytes, too large to print; use download"));
        }
        content.clear();
        content.reserve(info.size);
        return absl::OkStatus();
      },
      [&content](std::string_view data) {
        content += data;
        return absl::OkStatus();
      });
  if (!info.ok()) return info.status();
  if (info_out != nullptr) *info_out = *info;
  return content;
}

absl::StatusOr<ArtifactInfo> Client::Download(const std::string& name, const std::string& path,
                                              const Progress& progress) {
  // A regular file (or a new one) is replaced whole: written beside it, then renamed over it, so
  // that a failed download leaves the old file. Anything else is written in place, as `cp`
  // would: a rename would put a file where a device or a FIFO was (/dev/null), or where a
  // symbolic link was (/dev/stdout), instead of writing through it.
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat("'", path, "' is a directory"));
  }
  const std::filesystem::file_status type = std::filesystem::symlink_status(path, error);
  std::ofstream out;
  // Opened once the version is known, so that a missing artifact never opens a FIFO.
  auto open = [&out](const std::string& target) {
    if (out.is_open()) out.close();
    out.open(target, std::ios::binary | std::ios::trunc);
    if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot create ", target));
    return absl::OkStatus();
  };
  if (std::filesystem::exists(type) && !std::filesystem::is_regular_file(type)) {
    auto info = StreamTo(
        name, out, path, [&] { return open(path); }, progress);
    if (out.is_open()) out.close();
    if (info.ok() && out.fail()) return absl::InternalError(absl::StrCat("cannot write ", path));
    return info;
  }
  const std::string partial = path + ".partial";
  auto info = Read(
      name, [&](const ArtifactInfo&) { return open(partial); },
      [&](std::string_view data) {
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        if (!out) return absl::InternalError(absl::StrCat("cannot write ", partial));
        return absl::OkStatus();
      },
      progress);
  if (out.is_open()) out.close();
  if (info.ok() && (out.fail() || std::rename(partial.c_str(), path.c_str()) != 0)) {
    info = absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (!info.ok()) std::remove(partial.c_str());
  return info;
}

absl::StatusOr<ArtifactInfo> Client::Download(const std::string& name, std::ostream& out,
                                              const Progress& progress) {
  auto info = StreamTo(
      name, out, "the output", [] { return absl::OkStatus(); }, progress);
  out.flush();
  if (info.ok() && !out) return absl::InternalError("cannot write the output");
  return info;
}

absl::StatusOr<ArtifactInfo> Client::StreamTo(const std::string& name, std::ostream& out,
                                              const std::string& what,
                                              const std::function<absl::Status()>& open,
                                              const Progress& progress) {
  uint64_t written = 0;
  return Read(
      name,
      [&](const ArtifactInfo&) {
        if (written > 0) {
          return absl::AbortedError(absl::StrCat("'", name,
                                                 "' was replaced while it was written to ", what,
                                                 ", which cannot start over"));
        }
        return open();
      },
      [&](std::string_view data) {
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        if (!out) return absl::InternalError(absl::StrCat("cannot write ", what));
        written += data.size();
        return absl::OkStatus();
      },
      progress);
}

absl::Status Client::Delete(const std::string& name) {
  return CallNameNode<bool>(
             [&](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::Delete).Remote(name); },
             /*retry=*/false)
      .status();
}

absl::StatusOr<std::vector<ArtifactInfo>> Client::List(const std::string& name) {
  return CallNameNode<std::vector<ArtifactInfo>>(
      [&](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::List).Remote(name); },
      /*retry=*/true);
}

absl::StatusOr<StoreStatus> Client::Status() {
  auto status = CallNameNode<StoreStatus>(
      [](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::Status).Remote(); },
      /*retry=*/false, kFallbackLookupMs);
  if (status.ok() ||
      !(absl::IsUnavailable(status.status()) || absl::IsDeadlineExceeded(status.status()))) {
    return status;
  }
  // The storage nodes speak for themselves.
  StoreStatus fallback;
  fallback.name_node_state = "not answering (restarting?)";
  fallback.config = config_;
  std::vector<std::optional<ObjectRef<StorageReport>>> pings;
  for (int node = 0; node < config_.storage_nodes; ++node) {
    auto storage = Storage(node, /*refresh=*/true);
    pings.push_back(storage.has_value() ? std::optional(storage->Task(&StorageNode::Ping).Remote())
                                        : std::nullopt);
  }
  for (int node = 0; node < config_.storage_nodes; ++node) {
    StorageNodeStatus s;
    s.index = node;
    if (pings[node].has_value()) {
      try {
        const StorageReport report = *Get(*pings[node], 2000);
        s.alive = true;
        s.cluster_node = report.cluster_node;
        s.pid = report.pid;
        s.chunks = report.chunks;
        s.bytes = report.bytes;
      } catch (const Error&) {
        s.alive = false;
      }
    }
    fallback.storage.push_back(std::move(s));
  }
  return fallback;
}

absl::Status Client::Kill(int node) {
  auto storage = FindActor<StorageNode>(StorageActorName(node));
  if (!storage.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(StorageDisplayName(node), " is not running"));
  }
  try {
    lumen::Kill(*storage);
  } catch (const Error& e) {
    return StatusFromError(e);
  }
  storage_[static_cast<size_t>(node)].reset();
  AwaitSeen(name_node_, node, /*alive=*/false);
  return absl::OkStatus();
}

absl::Status Client::Revive(int node) {
  if (StorageAnswers(node)) {
    return absl::FailedPreconditionError(
        absl::StrCat(StorageDisplayName(node), " is already running"));
  }
  std::unique_ptr<KvStore> kv = ClusterKv();
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (true) {
    auto storage = StartStorageNodes(*kv, {node}, cache_bytes_, config_.scrub_interval_ms);
    if (storage.ok()) {
      storage_[static_cast<size_t>(node)] = storage->front();
      break;
    }
    // The name is free once the head has heard of the old actor's death.
    if (!absl::StrContains(storage.status().message(), "already exists") ||
        absl::Now() > deadline) {
      return storage.status();
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  AwaitSeen(name_node_, node, /*alive=*/true);
  return absl::OkStatus();
}

absl::StatusOr<bool> Client::CanLose(int node) {
  return CallNameNode<bool>(
      [&](ActorHandle<NameNode>& nn) { return nn.Task(&NameNode::CanLose).Remote(node); },
      /*retry=*/true);
}

}  // namespace lumen::dfs
