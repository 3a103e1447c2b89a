#include "scheduler/bundle_placement.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace lumen::scheduler {
namespace {

using Strategy = proto::PlacementGroupInfo::Strategy;

// Backtracking steps STRICT_SPREAD may take before it gives up for this round.
constexpr int kMaxSearchSteps = 100'000;

ResourceShape Sum(const std::vector<ResourceShape>& bundles) {
  ResourceShape sum;
  for (const ResourceShape& bundle : bundles) {
    for (const auto& [name, amount] : bundle) sum[name] += amount;
  }
  return sum;
}

void Take(ResourceShape& free, const ResourceShape& bundle) {
  for (const auto& [name, amount] : bundle) free[name] -= amount;
}

void Give(ResourceShape& free, const ResourceShape& bundle) {
  for (const auto& [name, amount] : bundle) free[name] += amount;
}

// The search state: live nodes in preference order (least loaded, then lower id), what each
// has left, and how many bundles of this group each holds.
struct Search {
  std::vector<const NodeView*> nodes;
  std::vector<ResourceShape> free;
  std::vector<int> holds;
  std::vector<int> choice;  // per bundle: an index into nodes, or -1
  int steps = 0;
};

Search MakeSearch(const std::vector<NodeView>& views, size_t num_bundles) {
  Search search;
  for (const NodeView& view : views) {
    if (view.alive) search.nodes.push_back(&view);
  }
  std::sort(search.nodes.begin(), search.nodes.end(), [](const NodeView* a, const NodeView* b) {
    const double la = NodeLoad(*a);
    const double lb = NodeLoad(*b);
    if (la < lb - 1e-9 || la > lb + 1e-9) return la < lb;
    return a->node_id < b->node_id;
  });
  for (const NodeView* node : search.nodes) search.free.push_back(node->available);
  search.holds.assign(search.nodes.size(), 0);
  search.choice.assign(num_bundles, -1);
  return search;
}

// STRICT_SPREAD: bundle `i` onward, each on a node that holds none yet (backtracking).
bool SpreadStrictly(const std::vector<ResourceShape>& bundles, size_t i, Search& search) {
  if (i == bundles.size()) return true;
  if (search.choice[i] >= 0) return SpreadStrictly(bundles, i + 1, search);
  for (size_t n = 0; n < search.nodes.size(); ++n) {
    if (++search.steps > kMaxSearchSteps) return false;
    if (search.holds[n] > 0 || !ShapeFits(search.free[n], bundles[i])) continue;
    search.choice[i] = static_cast<int>(n);
    ++search.holds[n];
    Take(search.free[n], bundles[i]);
    if (SpreadStrictly(bundles, i + 1, search)) return true;
    Give(search.free[n], bundles[i]);
    --search.holds[n];
    search.choice[i] = -1;
  }
  return false;
}

// PACK and SPREAD: each bundle in turn on the best node it fits, preferring nodes that hold
// the most (PACK) or the fewest (SPREAD) of the group's bundles so far.
bool PlaceGreedily(const std::vector<ResourceShape>& bundles, bool pack, Search& search) {
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (search.choice[i] >= 0) continue;
    int best = -1;
    for (size_t n = 0; n < search.nodes.size(); ++n) {
      if (!ShapeFits(search.free[n], bundles[i])) continue;
      if (best < 0) {
        best = static_cast<int>(n);
        continue;
      }
      const int have = search.holds[n];
      const int best_have = search.holds[static_cast<size_t>(best)];
      if (pack ? have > best_have : have < best_have) best = static_cast<int>(n);
    }
    if (best < 0) return false;
    search.choice[i] = best;
    ++search.holds[static_cast<size_t>(best)];
    Take(search.free[static_cast<size_t>(best)], bundles[i]);
  }
  return true;
}

// The node (an index into search.nodes) that can hold every unfixed bundle, or -1.
int OneNodeFor(const std::vector<ResourceShape>& bundles, const Search& search,
               const std::set<int>& fixed_nodes) {
  std::vector<ResourceShape> unfixed;
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (search.choice[i] < 0) unfixed.push_back(bundles[i]);
  }
  const ResourceShape sum = Sum(unfixed);
  for (size_t n = 0; n < search.nodes.size(); ++n) {
    if (!fixed_nodes.empty() && fixed_nodes.count(static_cast<int>(n)) == 0) continue;
    if (ShapeFits(search.free[n], sum)) return static_cast<int>(n);
  }
  return -1;
}

std::string StrategyName(Strategy strategy) {
  return proto::PlacementGroupInfo::Strategy_Name(strategy);
}

// The placement itself: true with a node per bundle in `out->node_ids`, or false (with
// `out->reason` set if a fixed bundle's node is gone).
bool TryPlace(const std::vector<ResourceShape>& bundles, Strategy strategy,
              const std::vector<std::string>& fixed, const std::vector<NodeView>& nodes,
              BundlePlacement* out) {
  Search search = MakeSearch(nodes, bundles.size());
  std::set<int> fixed_nodes;
  for (size_t i = 0; i < fixed.size() && i < bundles.size(); ++i) {
    if (fixed[i].empty()) continue;
    for (size_t n = 0; n < search.nodes.size(); ++n) {
      if (search.nodes[n]->node_id != fixed[i]) continue;
      search.choice[i] = static_cast<int>(n);
      ++search.holds[n];
      fixed_nodes.insert(static_cast<int>(n));
    }
    if (search.choice[i] < 0) {
      out->reason = absl::StrCat("bundle ", i, " stays on node ", fixed[i], ", which is dead");
      return false;
    }
  }
  bool placed = false;
  switch (strategy) {
    case proto::PlacementGroupInfo::STRICT_PACK: {
      const int node = OneNodeFor(bundles, search, fixed_nodes);
      if (node >= 0 && fixed_nodes.size() <= 1) {
        for (int& choice : search.choice) choice = node;
        placed = true;
      }
      break;
    }
    case proto::PlacementGroupInfo::PACK: {
      const int node = OneNodeFor(bundles, search, fixed_nodes);
      if (node >= 0 && fixed_nodes.size() <= 1) {
        for (int& choice : search.choice) {
          if (choice < 0) choice = node;
        }
        placed = true;
      } else {
        placed = PlaceGreedily(bundles, /*pack=*/true, search);
      }
      break;
    }
    case proto::PlacementGroupInfo::STRICT_SPREAD:
      placed = fixed_nodes.size() == static_cast<size_t>(std::count_if(
                                         fixed.begin(), fixed.end(),
                                         [](const std::string& id) { return !id.empty(); })) &&
               SpreadStrictly(bundles, 0, search);
      break;
    default:
      placed = PlaceGreedily(bundles, /*pack=*/false, search);
      break;
  }
  if (!placed) return false;
  out->node_ids.clear();
  for (int choice : search.choice) {
    out->node_ids.push_back(search.nodes[static_cast<size_t>(choice)]->node_id);
  }
  return true;
}

// Whether the group could be placed if every live node were idle.
bool Feasible(const std::vector<ResourceShape>& bundles, Strategy strategy,
              const std::vector<NodeView>& views) {
  std::vector<NodeView> idle;
  for (const NodeView& view : views) {
    if (!view.alive) continue;
    NodeView copy = view;
    copy.available = view.total;
    idle.push_back(std::move(copy));
  }
  BundlePlacement ignored;
  return TryPlace(bundles, strategy, {}, idle, &ignored);
}

}  // namespace

BundlePlacement PlaceBundles(const std::vector<ResourceShape>& bundles, Strategy strategy,
                             const std::vector<std::string>& fixed,
                             const std::vector<NodeView>& nodes) {
  BundlePlacement out;
  if (TryPlace(bundles, strategy, fixed, nodes, &out)) {
    out.placed = true;
    return out;
  }
  if (!out.reason.empty()) return out;
  out.infeasible = !Feasible(bundles, strategy, nodes);
  const auto live = static_cast<size_t>(
      std::count_if(nodes.begin(), nodes.end(), [](const NodeView& node) { return node.alive; }));
  if (!out.infeasible) {
    out.reason = absl::StrCat("waiting for resources: the live nodes cannot hold the ",
                              StrategyName(strategy), " group now");
  } else if (strategy == proto::PlacementGroupInfo::STRICT_SPREAD && bundles.size() > live) {
    out.reason = absl::StrCat("infeasible: STRICT_SPREAD needs ", bundles.size(),
                              " nodes and the cluster has ", live, " live");
  } else if (strategy == proto::PlacementGroupInfo::STRICT_PACK) {
    out.reason =
        absl::StrCat("infeasible: no live node has ", DescribeShape(Sum(bundles)), " in total");
  } else {
    out.reason = absl::StrCat("infeasible: the live nodes cannot hold the ", StrategyName(strategy),
                              " group even when idle");
  }
  return out;
}

}  // namespace lumen::scheduler
