#include "scheduler/placement_group_rows.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace lumen::scheduler {

nlohmann::json PlacementGroupRows(const std::vector<proto::PlacementGroupInfo>& groups) {
  nlohmann::json rows = nlohmann::json::array();
  for (const proto::PlacementGroupInfo& group : groups) {
    nlohmann::json bundles = nlohmann::json::array();
    for (int i = 0; i < group.bundles_size(); ++i) {
      const proto::PlacementGroupBundle& bundle = group.bundles(i);
      bundles.push_back({{"index", i},
                         {"resources", std::map<std::string, double>(bundle.resources().begin(),
                                                                     bundle.resources().end())},
                         {"node_id", bundle.node_id()}});
    }
    rows.push_back({{"placement_group_id", internal::Hex(group.placement_group_id())},
                    {"name", group.name()},
                    {"strategy", proto::PlacementGroupInfo::Strategy_Name(group.strategy())},
                    {"state", proto::PlacementGroupInfo::State_Name(group.state())},
                    {"bundles", std::move(bundles)},
                    {"reason", group.reason()},
                    {"creator_job", absl::StrCat("job-", group.creator_job())},
                    {"detached", group.detached()},
                    {"create_time_ms", group.create_time_ms()},
                    {"ready_time_ms", group.ready_time_ms()}});
  }
  return rows;
}

}  // namespace lumen::scheduler
