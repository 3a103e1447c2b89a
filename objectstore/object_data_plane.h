// A node's object data plane: a dedicated fast-path listener (net::Listener on its own I/O
// thread, apart from the node manager's client connections) over which node managers pull
// objects from each other in chunks, and the routing of releases to the nodes holding copies.
//
//   auto plane = ObjectDataPlane::Start(store, "10.0.0.1", token, PullManager::Options{});
//   (*plane)->address();                       // advertised in StoreLocation.data_address
//   (*plane)->Pull(id, size, holder, done);    // copy an object held by `holder` into `store`
//   (*plane)->Release(id, holder);             // the owner let go: free every copy
//
// Protocol (proto/wire.proto): the puller connects with a hello naming its own data address,
// sends ObjectChunkRequest frames (several in flight) and gets ObjectChunk frames back on the
// same connection. The holder sends each chunk from its store's memory without copying it
// (net::Connection::SendBorrowed) and pins the object until the kernel has the chunk's bytes,
// so a release racing a transfer fails that transfer (NOT_FOUND) and never exposes reused bytes.
// The holder of an object remembers every node that pulled it; releasing the object there frees its
// copy and forwards the release to each of those nodes, so that freeing removes every copy.
//
// Thread-safe. Frames are handled on the plane's own I/O thread. Stop() before the store goes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "net/io_pool.h"
#include "net/link.h"
#include "net/listener.h"
#include "objectstore/object_store.h"
#include "objectstore/pull_manager.h"
#include "objectstore/spill_manager.h"

namespace lumen::objectstore {

class ObjectDataPlane final : private PullManager::ChunkSource {
 public:
  struct Stats {
    PullManager::Stats pulls;
    uint64_t chunks_served = 0;
    uint64_t releases_forwarded = 0;
  };
  // The store client id chunks are pinned under while they are sent.
  static constexpr uint64_t kServeClient = 2;

  // Listens on ip:0. UNAVAILABLE if it cannot. With `spill` (may be null; must outlive the
  // plane), pulls spill objects to make room and releases delete spilled copies too.
  static absl::StatusOr<std::unique_ptr<ObjectDataPlane>> Start(ObjectStore& store,
                                                                SpillManager* spill,
                                                                const std::string& ip,
                                                                const std::string& token,
                                                                PullManager::Options options);
  ~ObjectDataPlane() override;
  ObjectDataPlane(const ObjectDataPlane&) = delete;
  ObjectDataPlane& operator=(const ObjectDataPlane&) = delete;

  // host:port other nodes pull from.
  const std::string& address() const { return address_; }

  // See PullManager::Pull; `holder` is the data address of the node that has the object.
  void Pull(const std::string& id, uint64_t size, const std::string& holder,
            PullManager::Done done);
  // The object's owner released it. `holder` is the data address of the node with its primary
  // copy (empty or ours: this node). Frees the copy there and every copy pulled from it.
  void Release(const std::string& id, const std::string& holder);

  Stats stats() const;
  // Stops listening, closes every connection, fails transfers in flight, joins the I/O thread.
  void Stop();

 private:
  ObjectDataPlane(ObjectStore& store, SpillManager* spill, std::string token,
                  PullManager::Options options);

  void RequestChunk(const std::string& source, const std::string& id, uint64_t offset,
                    uint64_t length) override;
  // Server side: a peer's requests and forwarded releases.
  net::Connection::Handlers OnAccept(const std::shared_ptr<net::Connection>& conn,
                                     const proto::Hello& hello);
  void Serve(net::Connection& conn, const proto::ObjectChunkRequest& request,
             const std::string& peer);
  // Frees this node's copy of `id` and forwards the release to the nodes that pulled it.
  void ReleaseHere(const std::string& id);
  // A link to another node's data plane (opened on first use, reopened after a loss).
  std::shared_ptr<net::Link> PeerLink(const std::string& address);

  // Set at construction / Start.
  ObjectStore& store_;
  SpillManager* const spill_;
  const std::string token_;
  std::string address_;
  std::unique_ptr<net::IoPool> io_;
  std::unique_ptr<PullManager> pulls_;
  std::unique_ptr<net::Listener> listener_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<net::Link>> links_ ABSL_GUARDED_BY(mu_);
  std::set<std::shared_ptr<net::Connection>> accepted_ ABSL_GUARDED_BY(mu_);
  // Objects held here that other nodes pulled: id -> their data addresses.
  std::map<std::string, std::set<std::string>> copies_ ABSL_GUARDED_BY(mu_);
  uint64_t chunks_served_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t releases_forwarded_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::objectstore
