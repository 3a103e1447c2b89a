#include "runtime/internal/pin_client.h"

#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/rpc.h"

namespace lumen::internal {
namespace {

constexpr absl::Duration kPinTimeout = absl::Seconds(10);

std::string ShortId(const std::string& id) { return absl::BytesToHexString(id.substr(0, 8)); }

class NodePinTransport : public PinClient::Transport {
 public:
  NodePinTransport(proto::NodeService::Stub* stub, std::string token, uint64_t client_id)
      : stub_(stub), token_(std::move(token)), client_id_(client_id) {}

  absl::StatusOr<std::vector<Pinned>> Pin(const std::vector<std::string>& ids) override {
    proto::PinObjectsRequest request;
    request.set_client_id(client_id_);
    for (const auto& id : ids) request.add_object_ids(id);
    proto::PinObjectsReply reply;
    grpc::ClientContext context;
    PrepareContext(&context, token_, kPinTimeout);
    auto status = stub_->PinObjects(&context, request, &reply);
    if (!status.ok()) return FromGrpc(status, "cannot pin objects in the node's store");
    if (static_cast<size_t>(reply.objects_size()) != ids.size()) {
      return absl::InternalError(absl::StrCat("the node manager answered ", reply.objects_size(),
                                              " pins for ", ids.size(), " objects"));
    }
    std::vector<Pinned> pinned(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const proto::PinnedObject& object = reply.objects(static_cast<int>(i));
      if (object.error().empty()) {
        pinned[i].offset = object.offset();
        pinned[i].size = object.size();
      } else if (object.lost()) {
        pinned[i].status = absl::NotFoundError(object.error());
      } else {
        pinned[i].status = absl::FailedPreconditionError(object.error());
      }
    }
    return pinned;
  }

  absl::Status Unpin(const std::vector<std::string>& ids) override {
    proto::UnpinObjectsRequest request;
    request.set_client_id(client_id_);
    for (const auto& id : ids) request.add_object_ids(id);
    proto::UnpinObjectsReply reply;
    grpc::ClientContext context;
    PrepareContext(&context, token_, kPinTimeout);
    auto status = stub_->UnpinObjects(&context, request, &reply);
    if (!status.ok()) return FromGrpc(status, "cannot unpin objects in the node's store");
    return absl::OkStatus();
  }

 private:
  proto::NodeService::Stub* const stub_;
  const std::string token_;
  const uint64_t client_id_;
};

}  // namespace

// This process's pins, by object id.
class PinClient::Table {
 public:
  struct Entry {
    uint64_t views = 0;       // live buffers over the object
    uint64_t store_pins = 0;  // pins held at the store (more than one after racing first pins)
    uint64_t offset = 0;
    uint64_t size = 0;
  };

  void Release(const std::string& id) {
    absl::MutexLock lock(&mu);
    auto it = entries.find(id);
    if (it != entries.end() && it->second.views > 0) --it->second.views;
  }

  absl::Mutex mu;
  absl::flat_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);
};

class PinClient::PinnedBuffer : public Buffer {
 public:
  PinnedBuffer(std::shared_ptr<Table> table, std::shared_ptr<const objectstore::ShmRegion> region,
               std::string id, uint64_t offset, uint64_t size)
      : table_(std::move(table)),
        region_(std::move(region)),
        id_(std::move(id)),
        data_(reinterpret_cast<const char*>(region_->data() + offset)),
        size_(size) {}
  ~PinnedBuffer() override { table_->Release(id_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  const char* data() const override { return data_; }
  size_t size() const override { return size_; }
  bool in_store() const override { return true; }

 private:
  const std::shared_ptr<Table> table_;
  // Keeps the mapping, even past the runtime's shutdown.
  const std::shared_ptr<const objectstore::ShmRegion> region_;
  const std::string id_;
  const char* const data_;
  const size_t size_;
};

PinClient::PinClient(std::unique_ptr<Transport> transport,
                     std::shared_ptr<const objectstore::ShmRegion> region)
    : transport_(std::move(transport)),
      region_(std::move(region)),
      table_(std::make_shared<Table>()) {}

PinClient::~PinClient() = default;

absl::StatusOr<std::vector<std::shared_ptr<Buffer>>> PinClient::Pin(
    const std::vector<const proto::StoreLocation*>& locations) {
  for (const proto::StoreLocation* location : locations) {
    if (location->object_id().empty()) {
      return absl::InvalidArgumentError("a store location without an object id");
    }
  }
  // Where each buffer starts: known at once for objects this process has pinned already; the
  // others are pinned at the store with one request (each id once).
  std::vector<uint64_t> offsets(locations.size());
  std::vector<absl::Status> errors(locations.size());
  std::vector<bool> viewed(locations.size(), false);  // counted in its entry's views
  std::vector<std::string> missing;
  std::vector<std::vector<size_t>> waiting;  // for each missing id, the locations that want it
  auto use = [&](size_t i, Table::Entry& entry) {
    if (entry.size != locations[i]->size()) {
      errors[i] = absl::InternalError(absl::StrCat("object ", ShortId(locations[i]->object_id()),
                                                   " has ", entry.size, " bytes in the store but ",
                                                   locations[i]->size(), " where its owner says"));
      return;
    }
    ++entry.views;
    viewed[i] = true;
    offsets[i] = entry.offset;
  };
  {
    absl::MutexLock lock(&table_->mu);
    absl::flat_hash_map<std::string, size_t> missing_index;
    for (size_t i = 0; i < locations.size(); ++i) {
      const std::string& id = locations[i]->object_id();
      auto it = table_->entries.find(id);
      if (it != table_->entries.end()) {
        use(i, it->second);
        continue;
      }
      auto [slot, inserted] = missing_index.try_emplace(id, missing.size());
      if (inserted) {
        missing.push_back(id);
        waiting.emplace_back();
      }
      waiting[slot->second].push_back(i);
    }
  }
  if (!missing.empty()) {
    auto pinned = transport_->Pin(missing);
    absl::MutexLock lock(&table_->mu);
    for (size_t j = 0; j < missing.size(); ++j) {
      absl::Status status = pinned.ok() ? (*pinned)[j].status : pinned.status();
      if (status.ok()) {
        const Transport::Pinned& answer = (*pinned)[j];
        // Entered even when unusable, so that its store pin is dropped by FlushUnpins.
        Table::Entry& entry = table_->entries[missing[j]];
        if (entry.store_pins++ == 0) {
          entry.offset = answer.offset;
          entry.size = answer.size;
        }
        if (answer.offset > region_->size() || answer.size > region_->size() - answer.offset) {
          status = absl::InternalError(absl::StrCat("the store placed object ", ShortId(missing[j]),
                                                    " at offset ", answer.offset, " (", answer.size,
                                                    " bytes), outside its region"));
        } else {
          for (size_t i : waiting[j]) use(i, entry);
        }
      }
      if (!status.ok()) {
        for (size_t i : waiting[j]) errors[i] = status;
      }
    }
  }
  // Buffers are made (and, on error, dropped) without the lock: their destructors take it.
  std::vector<std::shared_ptr<Buffer>> buffers(locations.size());
  for (size_t i = 0; i < locations.size(); ++i) {
    if (!viewed[i]) continue;
    buffers[i] = std::make_shared<PinnedBuffer>(table_, region_, locations[i]->object_id(),
                                                offsets[i], locations[i]->size());
  }
  for (const absl::Status& error : errors) {
    if (!error.ok()) return error;
  }
  return buffers;
}

void PinClient::FlushUnpins() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&table_->mu);
    for (auto it = table_->entries.begin(); it != table_->entries.end();) {
      if (it->second.views > 0) {
        ++it;
        continue;
      }
      for (uint64_t i = 0; i < it->second.store_pins; ++i) ids.push_back(it->first);
      table_->entries.erase(it++);
    }
  }
  if (ids.empty()) return;
  if (auto status = transport_->Unpin(ids); !status.ok()) {
    LUMEN_LOG(WARNING) << "unpinning " << ids.size() << " objects failed (they stay pinned until "
                       << "this process exits): " << status;
  }
}

size_t PinClient::num_pinned() const {
  absl::MutexLock lock(&table_->mu);
  return table_->entries.size();
}

std::unique_ptr<PinClient::Transport> MakeNodePinTransport(proto::NodeService::Stub* stub,
                                                           std::string token, uint64_t client_id) {
  return std::make_unique<NodePinTransport>(stub, std::move(token), client_id);
}

}  // namespace lumen::internal
