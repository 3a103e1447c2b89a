// Who holds each lease this node granted, and which holders are gone, so that every lease ends
// even when its holder never returns it: a holder registered with this node manager is gone once
// it is no longer registered here; a holder registered with another node manager (a spilled
// request) is gone once that node manager says so or the head declares that node dead. The node
// manager releases the leases of gone holders (and kills their workers, which may still run the
// holder's task). Deaths go by node id, never by address: a node manager started again at the
// same address (a restarted head) is another node.
//
//   LeaseHolders holders;
//   holders.Granted(lease_id, client_id, {});  // a holder registered with this node manager
//   holders.Granted(lease_id, client_id, {request.holder_node_address(),
//   request.holder_node_id()}); holders.Released(lease_id); for (uint64_t id :
//   holders.NodeDied(death.node_id())) Release(id); for (uint64_t id :
//   holders.FindOrphans(directory)) Release(id);  // every few seconds
//
// Thread-safe. FindOrphans calls the directory without holding the lock.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace lumen::scheduler {

// Answers whether the clients of one node manager are still registered there.
class HolderDirectory {
 public:
  virtual ~HolderDirectory() = default;
  // The clients among `clients` that the node manager at `node_address` ("" for this node) no
  // longer knows: gone for good. An error when that node manager cannot answer.
  virtual absl::StatusOr<std::vector<uint64_t>> GoneClients(
      const std::string& node_address, const std::vector<uint64_t>& clients) = 0;
};

class LeaseHolders {
 public:
  // How many dead nodes are remembered (a lease granted later to a holder on one of them is an
  // orphan at once).
  static constexpr size_t kMaxDeadNodes = 1000;

  // The node manager a holder is registered with; empty for this node manager.
  struct Node {
    std::string address;
    std::string id;  // may be empty (then only its node manager's answers end the lease)
  };

  // Lease `lease_id` went to `client`, registered with the node manager `node`.
  void Granted(uint64_t lease_id, uint64_t client, Node node);
  void Released(uint64_t lease_id);
  // The head declared node `node_id` dead: its clients are gone. Returns the leases they held.
  [[nodiscard]] std::vector<uint64_t> NodeDied(const std::string& node_id);
  // The leases whose holders are gone, asking `directory` once per holder node. A node that
  // cannot answer keeps its holders' leases until it answers or is declared dead.
  [[nodiscard]] std::vector<uint64_t> FindOrphans(HolderDirectory& directory);
  size_t size() const;

 private:
  struct Holder {
    uint64_t client = 0;
    Node node;
  };

  mutable absl::Mutex mu_;
  std::map<uint64_t, Holder> leases_ ABSL_GUARDED_BY(mu_);   // by lease id
  std::set<std::string> dead_nodes_ ABSL_GUARDED_BY(mu_);    // node ids
  std::deque<std::string> dead_order_ ABSL_GUARDED_BY(mu_);  // oldest first, for the bound
};

}  // namespace lumen::scheduler
