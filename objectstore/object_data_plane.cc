#include "objectstore/object_data_plane.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lumen::objectstore {
namespace {

std::string ShortId(const std::string& id) { return absl::BytesToHexString(id.substr(0, 8)); }

// One pin on an object held while a chunk of it is sent from the store's memory: taken by
// Serve, dropped by the connection once the kernel has the chunk's bytes (or it closed).
class ServePin {
 public:
  ServePin(ObjectStore& store, std::string id) : store_(store), id_(std::move(id)) {}
  ~ServePin() { store_.Unpin(id_, ObjectDataPlane::kServeClient).IgnoreError(); }
  ServePin(const ServePin&) = delete;
  ServePin& operator=(const ServePin&) = delete;

 private:
  ObjectStore& store_;
  const std::string id_;
};

// Chunks (8 MiB) are payloads, which may be as large as the connection's frame limit.
net::ConnectionOptions DataOptions() { return net::ConnectionOptions::FromEnvironment(); }

}  // namespace

ObjectDataPlane::ObjectDataPlane(ObjectStore& store, SpillManager* spill, std::string token,
                                 PullManager::Options options)
    : store_(store), spill_(spill), token_(std::move(token)) {
  if (spill_ != nullptr && !options.make_room) {
    options.make_room = [spill](uint64_t size) { spill->MakeRoom(size); };
  }
  pulls_ = std::make_unique<PullManager>(store_, static_cast<ChunkSource&>(*this), options);
}

absl::StatusOr<std::unique_ptr<ObjectDataPlane>> ObjectDataPlane::Start(
    ObjectStore& store, SpillManager* spill, const std::string& ip, const std::string& token,
    PullManager::Options options) {
  std::unique_ptr<ObjectDataPlane> plane(
      new ObjectDataPlane(store, spill, token, std::move(options)));
  plane->io_ = std::make_unique<net::IoPool>(1, "lumen-data-io");
  ObjectDataPlane* self = plane.get();
  auto listener = net::Listener::Start(
      *plane->io_, ip, 0, token, DataOptions(),
      [self](const std::shared_ptr<net::Connection>& conn, const proto::Hello& hello) {
        return self->OnAccept(conn, hello);
      });
  if (!listener.ok()) {
    plane->io_->Stop();
    return absl::Status(listener.status().code(),
                        absl::StrCat("object data plane: ", listener.status().message()));
  }
  plane->listener_ = std::move(*listener);
  plane->address_ = absl::StrCat(ip, ":", plane->listener_->port());
  return plane;
}

ObjectDataPlane::~ObjectDataPlane() { Stop(); }

void ObjectDataPlane::Stop() {
  std::vector<std::shared_ptr<net::Link>> links;
  std::vector<std::shared_ptr<net::Connection>> conns;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [address, link] : links_) links.push_back(link);
    conns.assign(accepted_.begin(), accepted_.end());
    links_.clear();
    accepted_.clear();
  }
  if (listener_) listener_->Stop();
  for (auto& link : links) link->Close("node stopping");
  for (auto& conn : conns) conn->Close("node stopping");
  if (io_) io_->Stop();
  // Whatever did not hear of its link's close before the I/O thread stopped.
  pulls_->FailAll("the node is stopping");
}

void ObjectDataPlane::Pull(const std::string& id, uint64_t size, const std::string& holder,
                           PullManager::Done done) {
  pulls_->Pull(id, size, holder, std::move(done));
}

void ObjectDataPlane::Release(const std::string& id, const std::string& holder) {
  if (holder.empty() || holder == address_) {
    ReleaseHere(id);
    return;
  }
  proto::Frame frame;
  frame.mutable_release()->add_object_ids(id);
  if (auto link = PeerLink(holder); link == nullptr || !link->Send(frame)) {
    LUMEN_LOG(WARNING) << "cannot release object " << ShortId(id) << " at " << holder
                       << ": the link is closed";
  }
}

void ObjectDataPlane::ReleaseHere(const std::string& id) {
  auto status = store_.Release(id);
  // A spilled copy may be on disk (or on its way there): its file goes too.
  if (spill_ != nullptr) spill_->Delete(id);
  if (!status.ok() && !absl::IsNotFound(status)) LUMEN_LOG(WARNING) << "release: " << status;
  std::set<std::string> holders;
  {
    absl::MutexLock lock(&mu_);
    auto it = copies_.find(id);
    if (it == copies_.end()) return;
    holders = std::move(it->second);
    copies_.erase(it);
    releases_forwarded_ += holders.size();
  }
  proto::Frame frame;
  frame.mutable_release()->add_object_ids(id);
  for (const std::string& holder : holders) {
    if (auto link = PeerLink(holder); link != nullptr) link->Send(frame);
  }
}

std::shared_ptr<net::Link> ObjectDataPlane::PeerLink(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (stopped_) return nullptr;
  auto& link = links_[address];
  if (link != nullptr && !link->closed()) return link;
  link = net::Link::Open(
      *io_, address, net::MakeHello(token_, address_), DataOptions(),
      {.on_frame =
           [this](net::Connection& conn, proto::Frame& frame) {
             if (!frame.has_chunk()) return;
             const proto::ObjectChunk& chunk = frame.chunk();
             if (!chunk.error().empty()) {
               pulls_->OnChunkError(chunk.object_id(), chunk.lost()
                                                           ? absl::NotFoundError(chunk.error())
                                                           : absl::InternalError(chunk.error()));
               return;
             }
             // Called once the chunk's payload is in the store.
             pulls_->OnChunkWritten(chunk.object_id(), chunk.offset(),
                                    conn.current_payload_bytes());
           },
       .on_close = [this,
                    address](const std::string& reason) { pulls_->OnSourceLost(address, reason); }},
      absl::Seconds(10),
      // A chunk's bytes are read from the socket straight into the store.
      [this](net::Connection&, const proto::Frame& frame, size_t bytes) -> char* {
        if (!frame.has_chunk()) return nullptr;
        return pulls_->ChunkDestination(frame.chunk().object_id(), frame.chunk().offset(), bytes);
      });
  return link;
}

void ObjectDataPlane::RequestChunk(const std::string& source, const std::string& id,
                                   uint64_t offset, uint64_t length) {
  proto::Frame frame;
  proto::ObjectChunkRequest* request = frame.mutable_chunk_request();
  request->set_object_id(id);
  request->set_offset(offset);
  request->set_length(length);
  auto link = PeerLink(source);
  if (link == nullptr || !link->Send(frame)) {
    pulls_->OnSourceLost(source, "the node is stopping or the link closed");
  }
}

net::Connection::Handlers ObjectDataPlane::OnAccept(const std::shared_ptr<net::Connection>& conn,
                                                    const proto::Hello& hello) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return {};
    accepted_.insert(conn);
  }
  std::weak_ptr<net::Connection> weak = conn;
  return {
      .on_frame =
          [this, peer = hello.address()](net::Connection& c, proto::Frame& frame) {
            if (frame.has_chunk_request()) {
              Serve(c, frame.chunk_request(), peer);
            } else if (frame.has_release()) {
              for (const auto& id : frame.release().object_ids()) ReleaseHere(id);
            }
          },
      .on_batch_end = nullptr,
      .on_close =
          [this, weak](net::Connection&, const std::string&) {
            absl::MutexLock lock(&mu_);
            if (auto c = weak.lock()) accepted_.erase(c);
          },
  };
}

void ObjectDataPlane::Serve(net::Connection& conn, const proto::ObjectChunkRequest& request,
                            const std::string& peer) {
  proto::Frame frame;
  proto::ObjectChunk* chunk = frame.mutable_chunk();
  chunk->set_object_id(request.object_id());
  chunk->set_offset(request.offset());
  auto location = store_.Pin(request.object_id(), kServeClient);
  if (absl::IsNotFound(location.status()) && spill_ != nullptr &&
      spill_->IsSpilled(request.object_id())) {
    // Spilled here: read it back from disk (on this thread; other transfers wait meanwhile).
    if (auto restored = spill_->Restore(request.object_id(), absl::Seconds(10)); restored.ok()) {
      location = store_.Pin(request.object_id(), kServeClient);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    ++chunks_served_;
  }
  if (!location.ok()) {
    chunk->set_error(absl::StrCat("node at ", address_, ": ", location.status().message()));
    chunk->set_lost(absl::IsNotFound(location.status()));
    conn.Send(frame);
    return;
  }
  if (request.offset() > location->size || request.length() > location->size - request.offset() ||
      request.length() > DataOptions().max_frame_bytes) {
    chunk->set_error(absl::StrCat("bad chunk request: ", request.length(), " bytes at offset ",
                                  request.offset(), " of an object of ", location->size, " bytes"));
    store_.Unpin(request.object_id(), kServeClient).IgnoreError();
    conn.Send(frame);
    return;
  }
  if (request.offset() == 0 && !peer.empty()) {
    // The first chunk makes the peer a copy holder (before it leaves, so that a release racing
    // it still reaches the peer).
    absl::MutexLock lock(&mu_);
    copies_[request.object_id()].insert(peer);
  }
  // The bytes go as the frame's payload, written to the socket straight from the store's memory;
  // the object stays pinned until the kernel has them.
  conn.SendBorrowed(frame, {.data = reinterpret_cast<const char*>(
                                store_.region().data() + location->offset + request.offset()),
                            .size = request.length(),
                            .keep_alive = std::make_shared<ServePin>(store_, request.object_id())});
}

ObjectDataPlane::Stats ObjectDataPlane::stats() const {
  Stats stats;
  stats.pulls = pulls_->stats();
  absl::MutexLock lock(&mu_);
  stats.chunks_served = chunks_served_;
  stats.releases_forwarded = releases_forwarded_;
  return stats;
}

}  // namespace lumen::objectstore
