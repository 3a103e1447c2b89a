#include "scheduler/placement_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lumen::scheduler {
namespace {

Placement At(const std::string& node_id) {
  Placement placement;
  placement.node_id = node_id;
  return placement;
}

const NodeView* Find(const std::vector<NodeView>& nodes, const std::string& node_id) {
  for (const NodeView& node : nodes) {
    if (node.node_id == node_id) return &node;
  }
  return nullptr;
}

// The least-loaded live node with the shape free (ties: the lower node id), or null.
const NodeView* LeastLoaded(const std::vector<NodeView>& nodes, const ResourceShape& shape) {
  const NodeView* best = nullptr;
  double best_load = 0;
  for (const NodeView& node : nodes) {
    if (!node.alive || !ShapeFits(node.available, shape)) continue;
    const double load = NodeLoad(node);
    if (best == nullptr || load < best_load - 1e-9 ||
        (load < best_load + 1e-9 && node.node_id < best->node_id)) {
      best = &node;
      best_load = load;
    }
  }
  return best;
}

bool AnyFeasible(const std::vector<NodeView>& nodes, const ResourceShape& shape) {
  return std::any_of(nodes.begin(), nodes.end(), [&](const NodeView& node) {
    return node.alive && ShapeFits(node.total, shape);
  });
}

Placement NoneNow(const std::vector<NodeView>& nodes, const ResourceShape& shape) {
  Placement placement;
  placement.infeasible = !AnyFeasible(nodes, shape);
  placement.reason =
      placement.infeasible
          ? absl::StrCat("infeasible: no live node has ", DescribeShape(shape))
          : absl::StrCat("waiting for ", DescribeShape(shape), ": every node that has it is busy");
  return placement;
}

Placement Default(const std::vector<NodeView>& nodes, const PlacementRequest& request) {
  const NodeView* preferred = Find(nodes, request.preferred_node_id);
  if (preferred != nullptr && preferred->alive && ShapeFits(preferred->available, request.shape)) {
    return At(preferred->node_id);
  }
  if (const NodeView* best = LeastLoaded(nodes, request.shape)) {
    return At(best->node_id);
  }
  return NoneNow(nodes, request.shape);
}

Placement Spread(const std::vector<NodeView>& nodes, const ResourceShape& shape,
                 std::string* last) {
  // The free node with the smallest id after `last`, else the smallest of all (a turn of the
  // round): the turns follow node ids, not positions in a list that changes as nodes get busy.
  const NodeView* next = nullptr;
  const NodeView* first = nullptr;
  for (const NodeView& node : nodes) {
    if (!node.alive || !ShapeFits(node.available, shape)) continue;
    if (first == nullptr || node.node_id < first->node_id) first = &node;
    if (node.node_id > *last && (next == nullptr || node.node_id < next->node_id)) next = &node;
  }
  if (first == nullptr) return NoneNow(nodes, shape);
  *last = (next != nullptr ? next : first)->node_id;
  return At(*last);
}

Placement Affinity(const std::vector<NodeView>& nodes, const PlacementRequest& request) {
  const std::string& target = request.strategy.node_id();
  const NodeView* node = Find(nodes, target);
  std::string problem;
  if (node == nullptr) {
    problem = absl::StrCat("node ", target, " is not part of the cluster");
  } else if (!node->alive) {
    problem = absl::StrCat("node ", target, " is dead");
  } else if (!ShapeFits(node->total, request.shape)) {
    problem = absl::StrCat("node ", target, " never has ", DescribeShape(request.shape));
  }
  if (!request.strategy.soft()) {
    if (!problem.empty()) {
      Placement never;
      never.unschedulable = absl::StrCat("hard node affinity: ", problem);
      return never;
    }
    return At(target);  // waits there while that node is busy
  }
  if (problem.empty() && ShapeFits(node->available, request.shape)) {
    return At(target);
  }
  return Default(nodes, request);
}

}  // namespace

bool ShapeFits(const ResourceShape& available, const ResourceShape& shape) {
  for (const auto& [name, amount] : shape) {
    if (amount <= 0) continue;
    auto it = available.find(name);
    if (it == available.end() || it->second + 1e-9 < amount) return false;
  }
  return true;
}

std::string DescribeShape(const ResourceShape& shape) {
  std::string out = "{";
  for (const auto& [name, amount] : shape) {
    if (out.size() > 1) out += ", ";
    absl::StrAppend(&out, name, ": ", amount);
  }
  return out + "}";
}

double NodeLoad(const NodeView& node) {
  double load = 0;
  for (const auto& [name, total] : node.total) {
    if (total <= 0) continue;
    auto it = node.available.find(name);
    const double free = it == node.available.end() ? 0 : it->second;
    load = std::max(load, (total - free) / total);
  }
  return load;
}

int CountFeasibleNodes(const std::vector<NodeView>& nodes, const ResourceShape& shape) {
  return static_cast<int>(std::count_if(nodes.begin(), nodes.end(), [&](const NodeView& node) {
    return node.alive && ShapeFits(node.total, shape);
  }));
}

Placement PickNode(const std::vector<NodeView>& nodes, const PlacementRequest& request,
                   std::string* spread_last) {
  switch (request.strategy.kind()) {
    case proto::SchedulingStrategy::SPREAD:
      return Spread(nodes, request.shape, spread_last);
    case proto::SchedulingStrategy::NODE_AFFINITY:
      return Affinity(nodes, request);
    default:
      return Default(nodes, request);
  }
}

}  // namespace lumen::scheduler
