// Sends actor method calls straight to the actor's worker: in submission order per caller,
// pipelined, over one fast-path connection per actor. Finds the actor (and its restarts)
// through the head without a thread per actor: lookups are asynchronous gRPC calls and
// connections are made on the I/O threads.
//
// Failure handling: a call that was in flight when the connection broke is retried on the
// restarted actor if the actor allows task retries; otherwise it fails with ACTOR_DIED (the
// actor died; the cause the head recorded) or ACTOR_UNAVAILABLE (the head still reports the
// actor alive: a stopped process or a network fault; the call may or may not have run). Calls
// not yet sent wait while the head reports the actor alive, and the caller reconnects with
// backoff; only the head's DEAD state (or exhausted restarts) fails them for good.
//
// Backpressure: Limiter(actor) bounds the calls and bytes one caller has outstanding toward
// one actor; the core worker acquires it in Remote() and releases it when a call finishes.
//
// Thread-safe; nothing here blocks. Replies and connection events arrive on I/O threads,
// lookups complete on gRPC's threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "net/connection.h"
#include "net/flow_control.h"
#include "net/io_pool.h"
#include "proto/control.grpc.pb.h"
#include "runtime/internal/task_events.h"
#include "runtime/internal/task_submitter.h"

namespace lumen::internal {

class ActorSubmitter {
 public:
  struct Options {
    std::string token;
    net::ConnectionOptions connection = net::ConnectionOptions::FromEnvironment();
    net::FlowLimits limits = net::FlowLimits::FromEnvironment();
    // How long queued calls wait for an unreachable head before failing.
    absl::Duration head_unreachable_timeout = absl::Seconds(60);
    TaskEventRecorder* events = nullptr;  // not owned; may be null
    // Called (without locks held) when the head reports an actor dead for good.
    std::function<void(const std::string& actor_id)> on_dead;
  };

  ActorSubmitter(Options options, net::IoPool& io, proto::HeadService::Stub* head);
  ~ActorSubmitter();

  // The in-flight bound of this caller toward `actor_id`.
  std::shared_ptr<net::InFlightLimiter> Limiter(const std::string& actor_id);
  // Reserves the next place in the actor's call order; the call is sent once Fill gives its
  // resolved task and every earlier call was sent.
  uint64_t Reserve(const std::string& actor_id);
  void Fill(const std::string& actor_id, uint64_t ticket, std::unique_ptr<PendingTask> task);
  // Gives up a reserved place (the call failed before it could be sent).
  void Skip(const std::string& actor_id, uint64_t ticket);
  // The head declared this node dead: connections to actors there are dropped at once.
  void OnNodeDeath(const std::string& node_id, const std::string& reason);
  // Fails every queued and in-flight call; later calls fail at once.
  void Shutdown();

 private:
  struct Actor;
  using Failures =
      std::vector<std::tuple<std::unique_ptr<PendingTask>, proto::ErrorInfo::Kind, std::string>>;
  struct Effects {
    std::vector<std::shared_ptr<net::Connection>> flush;
    std::vector<std::string> resolve;  // actor ids to look up
    std::vector<std::string> dead;     // actor ids the head reported dead
    Failures failures;
  };

  void DrainLocked(const std::string& actor_id, Actor& actor, Effects* effects)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(Effects& effects) ABSL_LOCKS_EXCLUDED(mu_);
  void Lookup(const std::string& actor_id);
  void OnLookup(const std::string& actor_id, const grpc::Status& status,
                const proto::ActorInfo& info);
  void OnConnected(const std::string& actor_id, uint64_t attempt,
                   absl::StatusOr<std::shared_ptr<net::Connection>> conn);
  void OnReply(const std::string& actor_id, const std::shared_ptr<net::Connection>& conn,
               proto::TaskReply& reply);
  void OnClosed(const std::string& actor_id, const std::shared_ptr<net::Connection>& conn,
                const std::string& reason);
  // Looks the actor up again after a pause that grows with consecutive failures.
  void RetryLater(const std::string& actor_id, int failures);

  const Options options_;
  net::IoPool& io_;
  proto::HeadService::Stub* const head_;

  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Actor>> actors_ ABSL_GUARDED_BY(mu_);
  // Lookups, connects and retry timers in flight: they call back into this object.
  int lookups_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::internal
