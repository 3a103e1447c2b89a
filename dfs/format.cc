#include "dfs/format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lumen::dfs {

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%d B", bytes)
                   : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string FormatList(const std::vector<ArtifactInfo>& artifacts) {
  if (artifacts.empty()) return "(no artifacts)\n";
  std::string out;
  for (const ArtifactInfo& artifact : artifacts) {
    absl::StrAppend(
        &out, absl::StrFormat("%s  version %d  %s  checksum %s\n", artifact.name, artifact.version,
                              FormatBytes(artifact.size), ChecksumHex(artifact.checksum)));
    for (size_t i = 0; i < artifact.chunks.size(); ++i) {
      const ChunkInfo& chunk = artifact.chunks[i];
      std::string replicas;
      for (int node : chunk.replicas) {
        absl::StrAppend(&replicas, replicas.empty() ? "" : " ", StorageDisplayName(node));
      }
      if (replicas.empty()) replicas = "(no live replica)";
      absl::StrAppend(
          &out, absl::StrFormat("  chunk %d  %s  %s\n", i, FormatBytes(chunk.size), replicas));
    }
  }
  return out;
}

std::string FormatWritten(const std::string& verb, const ArtifactInfo& artifact) {
  const size_t chunks = artifact.chunks.size();
  return absl::StrFormat("%s %s: version %d, %s in %d %s, checksum %s\n", verb, artifact.name,
                         artifact.version, FormatBytes(artifact.size), chunks,
                         chunks == 1 ? "chunk" : "chunks", ChecksumHex(artifact.checksum));
}

std::string FormatStatus(const StoreStatus& status) {
  int alive = 0;
  for (const StorageNodeStatus& node : status.storage) alive += node.alive ? 1 : 0;
  std::string out = absl::StrFormat(
      "name node: %s%s\n"
      "replication: %d  chunk size: %s  storage nodes: %d (%d alive)\n"
      "artifacts: %d  chunks: %d  under-replicated: %d  lost: %d  repairs in flight: %d\n",
      status.name_node_state,
      status.name_node_pid > 0 ? absl::StrFormat(" (pid %d)", status.name_node_pid) : "",
      status.config.replication, FormatBytes(status.config.chunk_size), status.storage.size(),
      alive, status.artifacts, status.chunks, status.under_replicated, status.lost,
      status.repairs_in_flight);
  for (const StorageNodeStatus& node : status.storage) {
    absl::StrAppend(
        &out, absl::StrFormat("  %-11s %-5s  node %-16s  pid %-7s  %d %s  %s\n",
                              StorageDisplayName(node.index), node.alive ? "alive" : "dead",
                              node.cluster_node.empty() ? "-" : node.cluster_node,
                              node.pid > 0 ? absl::StrCat(node.pid) : "-", node.chunks,
                              node.chunks == 1 ? "chunk" : "chunks", FormatBytes(node.bytes)));
  }
  return out;
}

nlohmann::json ArtifactJson(const ArtifactInfo& artifact) {
  nlohmann::json chunks = nlohmann::json::array();
  for (size_t i = 0; i < artifact.chunks.size(); ++i) {
    const ChunkInfo& chunk = artifact.chunks[i];
    nlohmann::json replicas = nlohmann::json::array();
    for (int node : chunk.replicas) replicas.push_back(StorageDisplayName(node));
    chunks.push_back({{"index", i},
                      {"id", chunk.id},
                      {"size", chunk.size},
                      {"checksum", ChecksumHex(chunk.checksum)},
                      {"replicas", replicas}});
  }
  return {{"name", artifact.name},
          {"version", artifact.version},
          {"size", artifact.size},
          {"checksum", ChecksumHex(artifact.checksum)},
          {"committed_ms", artifact.committed_ms},
          {"chunks", chunks}};
}

nlohmann::json StatusJson(const StoreStatus& status) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const StorageNodeStatus& node : status.storage) {
    nodes.push_back({{"name", StorageDisplayName(node.index)},
                     {"alive", node.alive},
                     {"cluster_node", node.cluster_node},
                     {"pid", node.pid},
                     {"chunks", node.chunks},
                     {"bytes", node.bytes}});
  }
  return {{"name_node", status.name_node_state},
          {"name_node_pid", status.name_node_pid},
          {"replication", status.config.replication},
          {"chunk_size", status.config.chunk_size},
          {"artifacts", status.artifacts},
          {"chunks", status.chunks},
          {"under_replicated", status.under_replicated},
          {"lost", status.lost},
          {"repairs_in_flight", status.repairs_in_flight},
          {"storage_nodes", nodes}};
}

}  // namespace lumen::dfs
