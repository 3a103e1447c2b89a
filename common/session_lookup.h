// Finds the local session folder that belongs to a given cluster, so that a driver or command
// given a head address uses that cluster's token rather than the newest session folder's.
//
//   absl::StatusOr<Session> s = FindLiveSessionFor(DefaultTempDir(), "10.0.0.1:6379");
//   if (s.ok()) token = *s->Token();
//
// A session belongs to the cluster at `head_address` when a live process recorded in it is the
// head at that address, or is a node that joined that head (`lumen start --address` writes the
// head's address into the session's `head_address` file). Reads only; thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/session.h"

namespace lumen::internal {

// The file in a node's session folder that names the head it joined.
inline constexpr char kHeadAddressFile[] = "head_address";

// The newest matching session under temp_dir; NOT_FOUND if none.
[[nodiscard]] absl::StatusOr<Session> FindLiveSessionFor(const std::string& temp_dir,
                                                         const std::string& head_address);

// The head a node of `session` joined, if one of its processes still runs; else "".
std::string JoinedHead(const Session& session);

// Records in `session` that it joined the head at `head_address`.
[[nodiscard]] absl::Status RecordJoinedHead(const Session& session,
                                            const std::string& head_address);

}  // namespace lumen::internal
