// Placement groups as rows of the state API (GET /api/placement-groups, `lumen list
// placement-groups`): id, name, strategy, state, bundles with their nodes, and why a group
// waits. Pure function.
#pragma once

#include <vector>

#include "nlohmann/json.hpp"
#include "proto/control.pb.h"

namespace lumen::scheduler {

nlohmann::json PlacementGroupRows(const std::vector<proto::PlacementGroupInfo>& groups);

}  // namespace lumen::scheduler
