// Pins the store objects this process reads in place, so that their bytes stay put while any
// view into them lives: one pin per object at the node's store, however many views this process
// holds, dropped once the last view is gone.
//
//   PinClient pins(MakeNodePinTransport(stub, token, client_id), region);
//   auto buffers = pins.Pin({&location});  // one round trip for the objects not pinned yet
//   // (*buffers)[0]->data() stays valid and unchanged while (*buffers)[0] lives
//   pins.FlushUnpins();  // now and then: unpins, in one request, what no view holds any more
//
// An object whose last view went away stays pinned until the next FlushUnpins, so that reading it
// again meanwhile costs no round trip. Inline values never come here.
// Thread-safe. Buffers may outlive the PinClient and keep the region mapped; their unpins are then
// never sent, which is fine because the node manager drops a departed client's pins.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lumen/internal/runtime_api.h"
#include "objectstore/shm_region.h"
#include "proto/control.grpc.pb.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

class PinClient {
 public:
  // How pins reach the node's store: the node manager's PinObjects/UnpinObjects, or a fake.
  class Transport {
   public:
    struct Pinned {
      absl::Status status;  // NOT_FOUND: the object is not (or no longer) in the store
      uint64_t offset = 0;
      uint64_t size = 0;
    };
    virtual ~Transport() = default;
    // Pins each id once; one result per id, in order.
    virtual absl::StatusOr<std::vector<Pinned>> Pin(const std::vector<std::string>& ids) = 0;
    // Drops one pin per entry of `ids`.
    virtual absl::Status Unpin(const std::vector<std::string>& ids) = 0;
  };

  PinClient(std::unique_ptr<Transport> transport,
            std::shared_ptr<const objectstore::ShmRegion> region);
  ~PinClient();
  PinClient(const PinClient&) = delete;
  PinClient& operator=(const PinClient&) = delete;

  // Buffers over the sealed objects at `locations`, in order, each keeping its object pinned
  // while it lives (Buffer::in_store() is true). The store checks each location's object_id and
  // says where that object is; its size must match. NOT_FOUND if an object is not in the store
  // any more, INTERNAL if the store's answer does not fit the location or the region, and the
  // transport's error if it failed. On error nothing stays pinned for this call.
  absl::StatusOr<std::vector<std::shared_ptr<Buffer>>> Pin(
      const std::vector<const proto::StoreLocation*>& locations);

  // Sends the unpins of objects that no buffer holds any more.
  void FlushUnpins();

  // Objects this process holds pinned at the store now (including those awaiting FlushUnpins).
  size_t num_pinned() const;

 private:
  class Table;
  class PinnedBuffer;

  // Set at construction.
  const std::unique_ptr<Transport> transport_;
  const std::shared_ptr<const objectstore::ShmRegion> region_;
  // Shared with the buffers, which may outlive this client.
  const std::shared_ptr<Table> table_;
};

// Pins through the node manager at `stub` for client `client_id`. `stub` must outlive it.
std::unique_ptr<PinClient::Transport> MakeNodePinTransport(proto::NodeService::Stub* stub,
                                                           std::string token, uint64_t client_id);

}  // namespace lumen::internal
