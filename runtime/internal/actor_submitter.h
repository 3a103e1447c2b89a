// Sends actor method calls straight to the actor's worker: in submission order per caller,
// pipelined, over one connection per actor. Finds the actor (and its restarts) through the
// head; calls on an actor that is dead, or died under them without retries left, fail with
// ACTOR_DIED errors that carry the cause the head recorded.
//
// Thread-safe. Replies arrive on connection reader threads; each actor being located has a
// resolver thread of its own, joined at Shutdown.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.grpc.pb.h"
#include "runtime/internal/task_events.h"
#include "runtime/internal/task_submitter.h"
#include "runtime/internal/wire.h"

namespace lumen::internal {

class ActorSubmitter {
 public:
  // `events` (not owned, may be null) records the calls' state transitions.
  ActorSubmitter(std::string token, proto::HeadService::Stub* head, TaskEventRecorder* events);
  ~ActorSubmitter();

  // Reserves the next place in the actor's call order; the call is sent once Fill gives its
  // resolved task and every earlier call was sent.
  uint64_t Reserve(const std::string& actor_id);
  void Fill(const std::string& actor_id, uint64_t ticket, std::unique_ptr<PendingTask> task);
  // Gives up a reserved place (the call failed before it could be sent).
  void Skip(const std::string& actor_id, uint64_t ticket);
  // Fails every queued and in-flight call; later calls fail at once.
  void Shutdown();

 private:
  struct Actor {
    enum class State { kUnknown, kResolving, kConnected, kDead };
    State state = State::kUnknown;
    std::string address;
    std::string stale_address;  // the address whose connection broke
    std::shared_ptr<Connection> conn;
    std::string death_cause;
    int max_task_retries = 0;
    int max_concurrency = 1;
    uint64_t next_ticket = 0;
    // Calls in order; null until their arguments are resolved.
    std::map<uint64_t, std::unique_ptr<PendingTask>> queue;
    absl::flat_hash_map<uint64_t, std::unique_ptr<PendingTask>> in_flight;  // by ticket
    // Calls that were running when the connection broke: failed once the cause is known.
    std::vector<std::unique_ptr<PendingTask>> orphaned;
  };
  using Failures = std::vector<std::pair<std::unique_ptr<PendingTask>, std::string>>;

  void DrainLocked(const std::string& actor_id, Actor& actor,
                   std::vector<std::shared_ptr<Connection>>* flush, Failures* failures)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Resolve(std::string actor_id);
  void OnReply(const std::string& actor_id, const std::shared_ptr<Connection>& conn,
               proto::TaskReply& reply);
  void OnClosed(const std::string& actor_id, const std::shared_ptr<Connection>& conn,
                const std::string& reason);
  static void Fail(Failures& failures);

  const std::string token_;
  proto::HeadService::Stub* const head_;
  TaskEventRecorder* const events_;

  absl::Mutex mu_;
  std::map<std::string, Actor> actors_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> resolvers_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lumen::internal
