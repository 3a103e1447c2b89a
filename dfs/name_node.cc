#include "dfs/name_node.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace lumen::dfs {
namespace {

constexpr char kWho[] = "dfs.namenode";
constexpr absl::Duration kTick = absl::Milliseconds(250);
constexpr absl::Duration kRepairPoll = absl::Milliseconds(5);
// A storage node that has not answered a ping for this long is dead.
constexpr absl::Duration kPingTimeout = absl::Seconds(5);
// A copy or inventory that has not finished by then is given up (and planned again).
constexpr absl::Duration kCallTimeout = absl::Seconds(60);
// A write that has not been committed within this time is aborted.
constexpr int64_t kAbandonedWriteMs = int64_t{60} * 60 * 1000;
// Methods wait this long for recovery.
constexpr absl::Duration kReadyTimeout = absl::Seconds(60);
constexpr size_t kMaxRepairs = 32;
constexpr size_t kMaxRepairsPerNode = 6;
constexpr size_t kDeleteBatch = 1000;
constexpr size_t kMaxNameBytes = 255;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// True once `ref` is ready, without waiting.
template <typename T>
bool Ready(const ObjectRef<T>& ref) {
  return !Wait(std::vector<ObjectRef<T>>{ref}, 1, 0).ready.empty();
}

absl::Status CheckName(const std::string& name) {
  bool valid = !name.empty() && name.size() <= kMaxNameBytes;
  for (unsigned char c : name) valid = valid && c > ' ' && c != 0x7f;
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "artifact names are 1 to 255 bytes with no spaces or control characters");
}

}  // namespace

NameNode* NameNode::Create() {
  std::unique_ptr<KvStore> kv = ClusterKv();
  auto stored = kv->Get("config");
  if (!stored.ok()) ThrowStatus(stored.status());
  if (!stored->has_value()) {
    ThrowStatus(absl::FailedPreconditionError(
        "the KV store has no DFS configuration; start the DFS with `lumen dfs start`"));
  }
  auto config = DecodeConfig(**stored);
  if (!config.ok()) ThrowStatus(config.status());
  return new NameNode(*config, std::move(kv));
}

NameNode::NameNode(StoreConfig config, std::unique_ptr<KvStore> kv)
    : config_(config),
      kv_(std::move(kv)),
      log_(kv_.get()),
      map_(config.storage_nodes, config.replication),
      storage_(static_cast<size_t>(config.storage_nodes)) {
  LogLine(kWho, absl::StrCat("starting (", config_.storage_nodes, " storage nodes, replication ",
                             config_.replication, ", chunk size ", config_.chunk_size, ")"));
  monitor_ = std::thread([this] { MonitorLoop(); });
}

NameNode::~NameNode() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (monitor_.joinable()) monitor_.join();
}

// ---- Recovery and monitoring ------------------------------------------------------------

void NameNode::Recover() {
  while (true) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto recovered = log_.Recover();
    if (recovered.ok()) {
      metadata_ = *std::move(recovered);
      for (const auto& [name, artifact] : metadata_.artifacts()) {
        for (const ChunkInfo& chunk : artifact.chunks) {
          map_.AddChunk(chunk.id, chunk.size, chunk.checksum);
        }
      }
      replayed_ = true;
      LogLine(kWho, absl::StrCat("replayed the log: ", metadata_.artifacts().size(), " artifacts, ",
                                 metadata_.pending().size(),
                                 " writes in progress; asking the storage nodes what they hold"));
      return;
    }
    if (absl::IsDataLoss(recovered.status())) {
      // Not something waiting fixes: every call reports it.
      recovery_error_ = std::string(recovered.status().message());
      LogLine(kWho, "cannot recover: " + recovery_error_);
      return;
    }
    LogLine(kWho, absl::StrCat("cannot read the log yet (", recovered.status().message(),
                               "); trying again"));
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1));
  }
}

void NameNode::MonitorLoop() {
  Recover();
  absl::Time next_tick = absl::Now();
  while (true) {
    bool woken = false;
    {
      absl::MutexLock lock(&mu_);
      // While copies are in flight their completions are collected often, so that the next
      // ones start at once; the storage nodes are pinged every tick.
      const absl::Duration wait = repairs_.empty() ? next_tick - absl::Now()
                                                   : std::min(kRepairPoll, next_tick - absl::Now());
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
      woken = mu_.AwaitWithTimeout(absl::Condition(&wake), std::max(wait, absl::ZeroDuration()));
      if (stopping_) return;
      wake_ = false;
    }
    if (woken || absl::Now() >= next_tick) {
      Tick();
      next_tick = absl::Now() + kTick;
    } else {
      RunRepairs();
      RunDeletes();
    }
  }
}

void NameNode::Tick() {
  for (int node = 0; node < config_.storage_nodes; ++node) PingStorage(node);
  uint64_t truncate = 0;
  {
    absl::MutexLock lock(&mu_);
    for (int node = 0; node < config_.storage_nodes; ++node) CollectPing(node);
    if (replayed_ && !ready_) {
      bool all = true;
      for (const Storage& s : storage_) all = all && s.known && (s.dead || !s.needs_inventory);
      if (all) {
        ready_ = true;
        LogLine(kWho, absl::StrCat("ready: ", metadata_.artifacts().size(), " artifacts, ",
                                   map_.chunks(), " chunks, ", map_.LiveNodes(), " of ",
                                   config_.storage_nodes, " storage nodes alive, ",
                                   map_.UnderReplicated(), " chunks under-replicated"));
      }
    }
    if (ready_) {
      for (const auto& [id, node] : map_.PlanTrims(64)) {
        map_.RemoveReplica(id, node);
        storage_[node].deletes.push_back(id);
      }
      std::vector<uint64_t> abandoned;
      for (const auto& [write_id, write] : metadata_.pending()) {
        if (NowMs() - write.started_ms > kAbandonedWriteMs) abandoned.push_back(write_id);
      }
      for (uint64_t write_id : abandoned) {
        LogLine(kWho, absl::StrCat("aborting write ", write_id, ", not committed within an hour"));
        if (auto status = LogAndApplyLocked(LogRecord::Abort(write_id, NowMs())); !status.ok()) {
          LogLine(kWho, std::string(status.message()));
        }
      }
    }
    truncate = truncate_through_;
    truncate_through_ = 0;
  }
  RunRepairs();
  RunDeletes();
  if (truncate > 0) {
    if (auto status = MetadataLog(kv_.get()).Truncate(truncate); !status.ok()) {
      LogLine(kWho, absl::StrCat("cannot drop checkpointed log records: ", status.message()));
    }
  }
}

void NameNode::PingStorage(int node) {
  bool need_handle = false;
  {
    absl::MutexLock lock(&mu_);
    const Storage& s = storage_[node];
    if (s.ping.has_value()) return;
    need_handle = !s.handle.has_value();
  }
  std::optional<ActorHandle<StorageNode>> handle;
  if (need_handle) {
    try {
      handle = GetActor<StorageNode>(StorageActorName(node));
    } catch (const Error& e) {
      return;  // the head cannot be reached: no news about the node
    }
  }
  absl::MutexLock lock(&mu_);
  Storage& s = storage_[node];
  if (need_handle) {
    if (!handle.has_value()) {
      MarkDeadLocked(node, "it has no actor");
      return;
    }
    s.handle = handle;
  }
  s.ping = s.handle->Task(&StorageNode::Ping).Remote();
  s.ping_sent = absl::Now();
}

void NameNode::CollectPing(int node) {
  Storage& s = storage_[node];
  if (s.ping.has_value()) {
    if (Ready(*s.ping)) {
      try {
        const StorageReport report = *Get(*s.ping, 0);
        s.ping.reset();
        s.known = true;
        s.dead = false;
        s.last_answer = absl::Now();
        map_.SetClusterNode(node, report.cluster_node);
        s.pid = report.pid;
        for (const std::string& id : report.corrupt) {
          if (map_.RemoveReplica(id, node)) {
            LogLine(kWho, absl::StrCat(StorageDisplayName(node), " dropped its corrupt replica of ",
                                       id, "; copying it from a good one"));
          }
        }
        if (report.boot_id != s.boot_id) {
          // Started (again): what it holds is learned from its inventory before it counts.
          s.boot_id = report.boot_id;
          s.needs_inventory = true;
          map_.SetAlive(node, false);
        }
      } catch (const Error& e) {
        s.ping.reset();
        MarkDeadLocked(node, e.what());
        return;
      }
    } else if (absl::Now() - s.ping_sent > kPingTimeout) {
      s.ping.reset();
      MarkDeadLocked(node,
                     absl::StrCat("it did not answer for ", absl::FormatDuration(kPingTimeout)));
      return;
    }
  }
  if (s.dead || !s.handle.has_value()) return;
  if (s.inventory.has_value()) {
    if (Ready(*s.inventory)) {
      try {
        const std::vector<ChunkSummary> held = *Get(*s.inventory, 0);
        ApplyInventoryLocked(node, held);
      } catch (const Error& e) {
        LogLine(kWho,
                absl::StrCat("inventory of ", StorageDisplayName(node), " failed: ", e.what()));
      }
      s.inventory.reset();
    }
  } else if (s.needs_inventory && s.known && replayed_) {
    s.inventory = s.handle->Task(&StorageNode::Inventory).Remote();
  }
}

void NameNode::MarkDeadLocked(int node, const std::string& why) {
  Storage& s = storage_[node];
  if (!s.dead && s.known) {
    LogLine(kWho, absl::StrCat(StorageDisplayName(node), " is dead: ", why));
  }
  s.dead = true;
  s.known = true;
  s.handle.reset();
  s.ping.reset();
  s.inventory.reset();
  s.needs_inventory = true;
  s.boot_id.clear();
  s.deletes.clear();
  map_.SetAlive(node, false);
}

void NameNode::ApplyInventoryLocked(int node, const std::vector<ChunkSummary>& held) {
  std::vector<std::string> ids;
  ids.reserve(held.size());
  for (const ChunkSummary& chunk : held) {
    // A replica whose checksum is not the committed one is not a replica of that chunk.
    const uint64_t expected = map_.ChunkChecksum(chunk.id);
    if (map_.HasChunk(chunk.id) && expected != chunk.checksum) {
      storage_[node].deletes.push_back(chunk.id);
      continue;
    }
    ids.push_back(chunk.id);
  }
  size_t stale = 0;
  for (const std::string& id : map_.SetHeldBy(node, ids)) {
    if (metadata_.IsLiveChunk(id)) continue;  // a write in progress
    storage_[node].deletes.push_back(id);
    ++stale;
  }
  Storage& s = storage_[node];
  s.needs_inventory = false;
  map_.SetAlive(node, true);
  LogLine(kWho, absl::StrCat(StorageDisplayName(node), " is alive with ", map_.NodeChunks(node),
                             " replicas",
                             stale > 0 ? absl::StrCat("; deleting ", stale, " stale ones") : ""));
}

void NameNode::RunRepairs() {
  absl::MutexLock lock(&mu_);
  if (!ready_) return;
  const absl::Time now = absl::Now();
  std::vector<RepairCall> running;
  for (RepairCall& call : repairs_) {
    const ReplicaMap::Repair& repair = call.repair;
    if (Ready(call.done)) {
      bool ok = false;
      try {
        ok = *Get(call.done, 0);
      } catch (const Error& e) {
        LogLine(kWho,
                absl::StrCat("copying ", repair.chunk, " from ", StorageDisplayName(repair.source),
                             " to ", StorageDisplayName(repair.target), " failed: ", e.what()));
        // What the two nodes hold is asked again before they are used for it.
        storage_[repair.source].needs_inventory = true;
      }
      map_.FinishRepair(repair, ok);
    } else if (now - call.started > kCallTimeout) {
      map_.FinishRepair(repair, false);
    } else {
      running.push_back(std::move(call));
    }
  }
  repairs_ = std::move(running);
  for (const ReplicaMap::Repair& repair : map_.PlanRepairs(kMaxRepairs, kMaxRepairsPerNode)) {
    Storage& source = storage_[repair.source];
    Storage& target = storage_[repair.target];
    if (!source.handle.has_value() || !target.handle.has_value()) continue;
    map_.StartRepair(repair);
    // The bytes go from the source's reply straight into the target's call, never through here.
    ObjectRef<ChunkBytes> data = source.handle->Task(&StorageNode::ReadChunk).Remote(repair.chunk);
    ObjectRef<bool> done = target.handle->Task(&StorageNode::WriteChunk)
                               .Remote(repair.chunk, map_.ChunkChecksum(repair.chunk), data);
    repairs_.push_back(RepairCall{repair, std::move(done), now});
  }
}

void NameNode::RunDeletes() {
  absl::MutexLock lock(&mu_);
  for (Storage& s : storage_) {
    s.deleting.erase(std::remove_if(s.deleting.begin(), s.deleting.end(),
                                    [](const ObjectRef<int64_t>& ref) { return Ready(ref); }),
                     s.deleting.end());
    if (s.deletes.empty() || s.dead || !s.handle.has_value()) continue;
    while (!s.deletes.empty()) {
      const size_t n = std::min(kDeleteBatch, s.deletes.size());
      std::vector<std::string> batch(s.deletes.end() - static_cast<std::ptrdiff_t>(n),
                                     s.deletes.end());
      s.deletes.resize(s.deletes.size() - n);
      s.deleting.push_back(s.handle->Task(&StorageNode::DeleteChunks).Remote(batch));
    }
  }
}

// ---- Metadata changes -------------------------------------------------------------------

absl::Status NameNode::LogAndApplyLocked(const LogRecord& record) {
  if (auto status = log_.Append(record); !status.ok()) return status;
  const std::vector<std::string> garbage = metadata_.Apply(record);
  auto plan = plans_.find(record.write_id);
  for (const std::string& id : garbage) {
    std::vector<int> holders = map_.RemoveChunk(id);
    if (holders.empty() && plan != plans_.end()) {
      // An aborted write's chunks: wherever they were meant to go.
      for (const auto& [node, bytes] : plan->second.reserved) holders.push_back(node);
      std::sort(holders.begin(), holders.end());
      holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    }
    for (int node : holders) storage_[node].deletes.push_back(id);
  }
  if (record.kind == LogRecord::Kind::kAbort) ReleasePlanLocked(record.write_id);
  auto covered = log_.MaybeCheckpoint(metadata_);
  if (!covered.ok()) {
    LogLine(kWho, absl::StrCat("cannot write a checkpoint: ", covered.status().message()));
  } else if (*covered > 0) {
    truncate_through_ = std::max(truncate_through_, *covered);
  }
  return absl::OkStatus();
}

void NameNode::ReleasePlanLocked(uint64_t write_id) {
  auto plan = plans_.find(write_id);
  if (plan == plans_.end()) return;
  for (const auto& [node, bytes] : plan->second.reserved) map_.Reserve(node, -bytes);
  plans_.erase(plan);
}

void NameNode::AwaitReadyLocked() {
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ready_ || !recovery_error_.empty();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&settled), kReadyTimeout)) {
    ThrowStatus(absl::UnavailableError(
        "the name node is still recovering (asking the storage nodes what they hold)"));
  }
  if (!recovery_error_.empty()) {
    ThrowStatus(absl::DataLossError("the name node cannot recover its log: " + recovery_error_));
  }
}

ArtifactInfo NameNode::WithLiveReplicasLocked(const ArtifactInfo& artifact) const {
  ArtifactInfo out = artifact;
  for (ChunkInfo& chunk : out.chunks) chunk.replicas = map_.LiveReplicas(chunk.id);
  return out;
}

WritePlan NameNode::BeginWrite(const std::string& name, uint64_t size, bool update) {
  if (auto status = CheckName(name); !status.ok()) ThrowStatus(status);
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  const int live = map_.LiveNodes();
  if (live == 0) ThrowStatus(absl::UnavailableError("no storage node is alive"));
  const uint64_t chunk_size = config_.chunk_size;
  const uint64_t chunks = (size + chunk_size - 1) / chunk_size;
  const uint64_t write_id = metadata_.next_write_id();
  const LogRecord record = LogRecord::BeginWrite(write_id, name, update, size, chunks, NowMs());
  if (auto status = metadata_.Check(record); !status.ok()) ThrowStatus(status);
  if (auto status = LogAndApplyLocked(record); !status.ok()) ThrowStatus(status);
  WritePlan plan;
  plan.write_id = write_id;
  plan.chunk_size = chunk_size;
  plan.placements.reserve(chunks);
  Plan& reserved = plans_[write_id];
  const int want = std::min(config_.replication, live);
  for (uint64_t i = 0; i < chunks; ++i) {
    const auto bytes = static_cast<int64_t>(std::min(chunk_size, size - i * chunk_size));
    std::vector<int> nodes = map_.Place(want, {});
    for (int node : nodes) {
      map_.Reserve(node, bytes);
      reserved.reserved.emplace_back(node, bytes);
    }
    plan.placements.push_back(std::move(nodes));
  }
  return plan;
}

int NameNode::ReplaceReplica(uint64_t write_id, const std::vector<int>& exclude) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  auto plan = plans_.find(write_id);
  if (!metadata_.pending().contains(write_id)) {
    ThrowStatus(
        absl::FailedPreconditionError(absl::StrCat("write ", write_id, " is not in progress")));
  }
  std::vector<int> nodes = map_.Place(1, exclude);
  if (nodes.empty()) return -1;
  if (plan != plans_.end()) {
    const auto bytes = static_cast<int64_t>(config_.chunk_size);
    map_.Reserve(nodes[0], bytes);
    plan->second.reserved.emplace_back(nodes[0], bytes);
  }
  return nodes[0];
}

ArtifactInfo NameNode::Commit(uint64_t write_id, std::vector<ChunkInfo> chunks, uint64_t checksum) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  auto pending = metadata_.pending().find(write_id);
  if (pending == metadata_.pending().end()) {
    if (auto committed = metadata_.CommittedWrite(write_id)) {
      return WithLiveReplicasLocked(*committed);  // a retried commit
    }
    ThrowStatus(absl::FailedPreconditionError(
        absl::StrCat("write ", write_id, " is not in progress (it was aborted)")));
  }
  for (ChunkInfo& chunk : chunks) {
    std::sort(chunk.replicas.begin(), chunk.replicas.end());
    chunk.replicas.erase(std::unique(chunk.replicas.begin(), chunk.replicas.end()),
                         chunk.replicas.end());
    for (int node : chunk.replicas) {
      if (node < 0 || node >= config_.storage_nodes) {
        ThrowStatus(absl::InvalidArgumentError(
            absl::StrCat("chunk ", chunk.id, " names storage node ", node, ", which is not one")));
      }
    }
  }
  ArtifactInfo artifact;
  artifact.name = pending->second.name;
  const ArtifactInfo* current = metadata_.Find(artifact.name);
  artifact.version = current != nullptr ? current->version + 1 : 1;
  artifact.write_id = write_id;
  artifact.size = pending->second.size;
  artifact.checksum = checksum;
  artifact.committed_ms = NowMs();
  artifact.chunks = std::move(chunks);
  const LogRecord record = LogRecord::Commit(artifact, artifact.committed_ms);
  if (auto status = metadata_.Check(record); !status.ok()) ThrowStatus(status);
  if (auto status = LogAndApplyLocked(record); !status.ok()) ThrowStatus(status);
  for (const ChunkInfo& chunk : artifact.chunks) {
    map_.AddChunk(chunk.id, chunk.size, chunk.checksum);
    for (int node : chunk.replicas) map_.AddReplica(chunk.id, node);
  }
  ReleasePlanLocked(write_id);
  return WithLiveReplicasLocked(artifact);
}

bool NameNode::Abort(uint64_t write_id) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  if (!metadata_.pending().contains(write_id)) return false;
  if (auto status = LogAndApplyLocked(LogRecord::Abort(write_id, NowMs())); !status.ok()) {
    ThrowStatus(status);
  }
  return true;
}

ArtifactInfo NameNode::Lookup(const std::string& name) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  const ArtifactInfo* artifact = metadata_.Find(name);
  if (artifact == nullptr) {
    ThrowStatus(absl::NotFoundError(absl::StrCat("artifact '", name, "' does not exist")));
  }
  return WithLiveReplicasLocked(*artifact);
}

bool NameNode::Delete(const std::string& name) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  const LogRecord record = LogRecord::Delete(name, NowMs());
  if (auto status = metadata_.Check(record); !status.ok()) ThrowStatus(status);
  if (auto status = LogAndApplyLocked(record); !status.ok()) ThrowStatus(status);
  return true;
}

std::vector<ArtifactInfo> NameNode::List(const std::string& name) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  std::vector<ArtifactInfo> out;
  if (!name.empty()) {
    const ArtifactInfo* artifact = metadata_.Find(name);
    if (artifact == nullptr) {
      ThrowStatus(absl::NotFoundError(absl::StrCat("artifact '", name, "' does not exist")));
    }
    out.push_back(WithLiveReplicasLocked(*artifact));
    return out;
  }
  out.reserve(metadata_.artifacts().size());
  for (const auto& [artifact_name, artifact] : metadata_.artifacts()) {
    out.push_back(WithLiveReplicasLocked(artifact));
  }
  return out;
}

StoreStatus NameNode::Status() {
  absl::MutexLock lock(&mu_);
  StoreStatus status;
  status.name_node_state =
      !recovery_error_.empty() ? "failed: " + recovery_error_ : (ready_ ? "ready" : "recovering");
  status.name_node_pid = getpid();
  status.config = config_;
  status.artifacts = metadata_.artifacts().size();
  status.chunks = map_.chunks();
  status.under_replicated = map_.UnderReplicated();
  status.lost = map_.Lost();
  status.repairs_in_flight = map_.RepairsInFlight();
  for (int node = 0; node < config_.storage_nodes; ++node) {
    StorageNodeStatus s;
    s.index = node;
    s.alive = map_.IsAlive(node);
    s.cluster_node = map_.ClusterNode(node);
    s.pid = s.alive ? storage_[node].pid : 0;
    s.chunks = map_.NodeChunks(node);
    s.bytes = map_.NodeBytes(node);
    status.storage.push_back(std::move(s));
  }
  return status;
}

bool NameNode::ReportBadReplica(const std::string& chunk_id, int node) {
  absl::MutexLock lock(&mu_);
  if (node < 0 || node >= config_.storage_nodes) return false;
  storage_[node].needs_inventory = true;
  wake_ = true;
  return true;
}

bool NameNode::Probe(int node) {
  absl::MutexLock lock(&mu_);
  if (node < 0 || node >= config_.storage_nodes) return false;
  Storage& s = storage_[node];
  // A dead node's actor is looked up again by name; a live one answers its next ping.
  if (s.dead) s.handle.reset();
  wake_ = true;
  return true;
}

bool NameNode::CanLose(int node) {
  absl::MutexLock lock(&mu_);
  AwaitReadyLocked();
  return map_.CanLose(node);
}

LUMEN_REMOTE(NameNode::Create, &NameNode::BeginWrite, &NameNode::ReplaceReplica, &NameNode::Commit,
             &NameNode::Abort, &NameNode::Lookup, &NameNode::Delete, &NameNode::List,
             &NameNode::Status, &NameNode::ReportBadReplica, &NameNode::Probe, &NameNode::CanLose);

}  // namespace lumen::dfs
