// The node manager's side of objects that move between nodes: its data plane's counters in
// the node's status, and what is spilled to disk. (NodeManager::PullObjects lives in
// node_manager_objects.cc.)
#pragma once

#include "objectstore/object_data_plane.h"
#include "proto/control.pb.h"

namespace lumen::scheduler {

// Fills the data plane's address and transfer counters, and what is spilled (if `spill`), into
// `info`.
void AddDataPlaneInfo(const objectstore::ObjectDataPlane& plane,
                      const objectstore::SpillManager* spill, proto::NodeInfo* info);

}  // namespace lumen::scheduler
