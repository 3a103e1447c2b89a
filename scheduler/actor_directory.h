// The head's table of actors: creation (placing each actor on a node manager), names, state,
// restarts after deaths, and kills. Keeps every live actor and the newest `max_dead_actors`
// (10,000) dead ones; older dead actors are forgotten (their names become free).
//
// Thread-safe. Creations and restarts run on their own short-lived threads, which hold the
// table through a shared pointer, so they never outlive its state.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/control.grpc.pb.h"

namespace lumen::scheduler {

class ActorDirectory {
 public:
  // Where an actor should run: a node manager's address, or none now (the actor waits in the
  // head's queue and is placed again when nodes or actors change), or never.
  struct NodePick {
    std::string address;
    std::string why;     // when address is empty
    bool never = false;  // it can never be placed: the actor dies with `why`
  };
  using NodePicker = std::function<NodePick(const proto::ActorSpec& spec)>;

  ActorDirectory(std::string token, NodePicker pick_node, size_t max_dead_actors = 10'000);
  ~ActorDirectory();

  grpc::Status Create(const proto::ActorSpec& spec);
  grpc::Status Get(const proto::GetActorInfoRequest& request, proto::ActorInfo* info);
  grpc::Status Kill(const std::string& actor_id, bool no_restart);
  void ReportDeath(const std::string& actor_id, const std::string& cause, bool restartable);
  // The node manager at `address` was declared dead: so are the actors it ran.
  void NodeDied(const std::string& address);
  std::vector<proto::ActorInfo> List();
  // Nodes or resources changed: actors waiting for a node try again at once.
  void RetryPlacements();

 private:
  struct Actor {
    proto::ActorSpec spec;
    proto::ActorInfo info;
    std::string node_address;
    bool killed = false;
  };
  struct State {
    absl::Mutex mu;
    absl::CondVar changed;
    std::map<std::string, Actor> actors ABSL_GUARDED_BY(mu);
    std::map<std::string, std::string> names ABSL_GUARDED_BY(mu);  // ns + '\0' + name -> id
    std::deque<std::string> dead ABSL_GUARDED_BY(mu);              // ids, in order of death
    size_t max_dead = 0;
    bool stopping ABSL_GUARDED_BY(mu) = false;
  };

  // Places the actor and waits for its process to construct it (on a thread of its own). An
  // actor no node can take now waits for one, however long that takes.
  static void StartActor(const std::shared_ptr<State>& state, const std::string& token,
                         const NodePicker& pick_node, const std::string& actor_id, bool restarted);
  // Moves a starting actor to ALIVE, or to DEAD with the reason it did not start.
  static void RecordStart(State& state, Actor& actor, bool started, const std::string& address,
                          const proto::StartActorReply& reply, const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);
  // Stamps the death time and forgets the oldest dead actors beyond the limit.
  static void RecordDeathLocked(State& state, Actor& actor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);

  const std::string token_;
  const NodePicker pick_node_;
  std::shared_ptr<State> state_;
};

}  // namespace lumen::scheduler
