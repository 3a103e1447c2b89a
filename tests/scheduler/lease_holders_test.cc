// Which leases lost their holders, against a fake directory of node managers.
#include "scheduler/lease_holders.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace lumen::scheduler {
namespace {

// Node managers by address ("" for this one): the clients each still knows; an address missing
// from `registered` cannot be reached.
class FakeDirectory final : public HolderDirectory {
 public:
  absl::StatusOr<std::vector<uint64_t>> GoneClients(const std::string& node_address,
                                                    const std::vector<uint64_t>& clients) override {
    asked.push_back(node_address);
    auto node = registered.find(node_address);
    if (node == registered.end()) return absl::UnavailableError("cannot reach " + node_address);
    std::vector<uint64_t> gone;
    for (uint64_t client : clients) {
      if (!node->second.contains(client)) gone.push_back(client);
    }
    return gone;
  }

  std::map<std::string, std::set<uint64_t>> registered;
  std::vector<std::string> asked;
};

std::set<uint64_t> AsSet(const std::vector<uint64_t>& ids) { return {ids.begin(), ids.end()}; }

TEST_CASE("a lease whose holder is no longer registered with its node manager is an orphan",
          "[scheduler][leases]") {
  LeaseHolders holders;
  FakeDirectory directory;
  directory.registered[""] = {1};
  directory.registered["10.0.0.2:7000"] = {7};
  holders.Granted(100, 1, {});
  holders.Granted(101, 2, {});                       // a local holder that exited
  holders.Granted(102, 7, {"10.0.0.2:7000", "n2"});  // a holder on another node that lives
  holders.Granted(103, 8, {"10.0.0.2:7000", "n2"});  // one that died there
  CHECK(AsSet(holders.FindOrphans(directory)) == std::set<uint64_t>{101, 103});
  // Each node manager is asked once for all of its clients.
  CHECK(directory.asked.size() == 2);
}

TEST_CASE("a released lease is never reported as an orphan", "[scheduler][leases]") {
  LeaseHolders holders;
  FakeDirectory directory;
  directory.registered[""] = {};
  holders.Granted(100, 1, {});
  holders.Released(100);
  CHECK(holders.FindOrphans(directory).empty());
  CHECK(holders.size() == 0);
  CHECK(holders.NodeDied("").empty());
}

TEST_CASE("a holder node that cannot answer keeps its leases until the head declares it dead",
          "[scheduler][leases]") {
  LeaseHolders holders;
  FakeDirectory directory;  // 10.0.0.3:7000 cannot be reached
  holders.Granted(100, 5, {"10.0.0.3:7000", "n3"});
  holders.Granted(101, 6, {"10.0.0.4:7000", "n4"});
  CHECK(holders.FindOrphans(directory).empty());
  CHECK(holders.NodeDied("n3") == std::vector<uint64_t>{100});
  // Still held until the node manager releases it; then gone from the table.
  holders.Released(100);
  CHECK(holders.FindOrphans(directory).empty());
}

TEST_CASE("a lease granted to a holder on a node already declared dead is an orphan at once",
          "[scheduler][leases]") {
  LeaseHolders holders;
  FakeDirectory directory;
  CHECK(holders.NodeDied("n3").empty());
  // The grant raced with the death notice: its reply went nowhere.
  holders.Granted(100, 5, {"10.0.0.3:7000", "n3"});
  // A node manager started again at the same address is another node: its holders live on.
  directory.registered["10.0.0.3:7000"] = {6};
  holders.Granted(101, 6, {"10.0.0.3:7000", "n3-again"});
  CHECK(holders.FindOrphans(directory) == std::vector<uint64_t>{100});
  CHECK(directory.asked == std::vector<std::string>{"10.0.0.3:7000"});
}

TEST_CASE("dead node managers are remembered up to a bound", "[scheduler][leases]") {
  LeaseHolders holders;
  FakeDirectory directory;
  for (size_t i = 0; i <= LeaseHolders::kMaxDeadNodes; ++i) {
    (void)holders.NodeDied("n" + std::to_string(i));
  }
  // The oldest is forgotten: its node manager is asked again (and cannot answer).
  holders.Granted(100, 5, {"10.0.1.1:7000", "n0"});
  holders.Granted(101, 6, {"10.0.1.2:7000", "n1"});
  CHECK(holders.FindOrphans(directory) == std::vector<uint64_t>{101});
  CHECK(directory.asked == std::vector<std::string>{"10.0.1.1:7000"});
}

}  // namespace
}  // namespace lumen::scheduler
