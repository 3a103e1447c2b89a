// How the DFS shell shows things: the text of `list` and `status` that a person reads after
// each step of the lab, and the JSON that `--json` prints instead.
//
//   std::cout << FormatList(artifacts);      // one line per artifact, one per chunk
//   std::cout << StatusJson(status).dump();
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dfs/messages.h"

namespace lumen::dfs {

// "5 B", "1.0 KiB", "1.5 MiB", "1.0 GiB".
std::string FormatBytes(uint64_t bytes);

// Per artifact:  "<name>  version <v>  <size>  checksum <16 hex>"
// then per chunk: "  chunk <i>  <size>  storage.<a> storage.<b> ..." (live replicas), or
// "(no artifacts)".
std::string FormatList(const std::vector<ArtifactInfo>& artifacts);
// "uploaded a: version 1, 5 B in 1 chunk, checksum <16 hex>" (the verb is given).
std::string FormatWritten(const std::string& verb, const ArtifactInfo& artifact);
// The name node's state, the replication factor and chunk size, the counts (under-replicated
// among them) and one line per storage node: alive or dead, cluster node, chunks, bytes.
std::string FormatStatus(const StoreStatus& status);

nlohmann::json ArtifactJson(const ArtifactInfo& artifact);
nlohmann::json StatusJson(const StoreStatus& status);

}  // namespace lumen::dfs
