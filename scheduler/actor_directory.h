// The head's table of actors: creation (placing each actor on a node manager), names, state,
// restarts after deaths, and kills. Keeps every live actor and the newest `max_dead_actors`
// (10,000) dead ones; older dead actors are forgotten (their names become free).
//
// Every process an actor gets is an incarnation, numbered from 1 in StartActor requests and
// death reports; a report about any incarnation but the current one is stale and dropped, so
// a late report about an old process never kills its replacement. A death reported while its
// incarnation is still starting is applied once the start is recorded. The head's deadline for
// a start (kActorStartDeadline) is the node manager's too: the node gives up and ends the
// process before the head does, and a start the head gave up on is killed by incarnation.
//
// Thread-safe. Creations and restarts run on their own short-lived threads, which hold the
// table through a shared pointer, so they never outlive its state.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/control.grpc.pb.h"
#include "scheduler/head_store.h"

namespace lumen::scheduler {

// How long a node manager may take to start an actor: waiting for its resources and for its
// factory to return. The head's StartActor call carries it as its deadline.
inline constexpr absl::Duration kActorStartDeadline = absl::Seconds(120);

// The head store's table of actors (ActorRecord by actor id).
inline constexpr char kActorTable[] = "actors";

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

  // With a `store` (may be null; must outlive the directory) every change of an actor is
  // written to it before it is acknowledged, and Recover reads the table back.
  ActorDirectory(std::string token, NodePicker pick_node, size_t max_dead_actors = 10'000,
                 HeadStore* store = nullptr);
  ~ActorDirectory();

  grpc::Status Create(const proto::ActorSpec& spec);
  grpc::Status Get(const proto::GetActorInfoRequest& request, proto::ActorInfo* info);
  // `cause`: why it ended, shown to its callers when no_restart.
  grpc::Status Kill(const std::string& actor_id, bool no_restart,
                    const std::string& cause = "killed by lumen::Kill");
  // `incarnation` 0: whichever runs now.
  void ReportDeath(const std::string& actor_id, uint64_t incarnation, const std::string& cause,
                   bool restartable);
  // The node manager at `address` was declared dead: so are the actors it ran.
  void NodeDied(const std::string& address);
  // The job ended: its actors that are not detached end too, wherever they run.
  void JobFinished(uint64_t job_id, const std::string& cause);
  std::vector<proto::ActorInfo> List();
  // Nodes or resources changed: actors waiting for a node try again at once.
  void RetryPlacements();

  // ---- A restarted head (actor_recovery.cc)
  // Reads the actors a previous head kept. Those it knew alive must be confirmed within
  // `confirm_within` by their node re-registering with their process still running; the
  // others, and those that were starting, are restarted (as their restart policy allows) once
  // that time has passed and the nodes had the chance to come back.
  [[nodiscard]] absl::Status Recover(absl::Duration confirm_within);
  // A node registered: its actors from before the restart are confirmed or declared dead.
  void NodeRegistered(const proto::NodeInfo& node);
  // Ends the recovery window once it passed (the head's monitor calls it periodically).
  void CheckRecovery();

 private:
  // The key of a named actor in State::names.
  static std::string NameKey(const std::string& ns, const std::string& name);
  struct Actor {
    proto::ActorSpec spec;
    proto::ActorInfo info;
    std::string node_address;
    bool killed = false;       // ended on purpose: never restarted
    std::string killed_cause;  // why, when killed
    uint64_t incarnation = 0;  // of the process starting or running now
    // A death of the current incarnation reported before its start was recorded.
    bool died_while_starting = false;
    std::string pending_cause;
    bool pending_restartable = false;
    // Recovered from the store as alive: not yet seen running by its node.
    bool unconfirmed = false;
  };
  struct State {
    absl::Mutex mu;
    absl::CondVar changed;
    std::map<std::string, Actor> actors ABSL_GUARDED_BY(mu);
    std::map<std::string, std::string> names ABSL_GUARDED_BY(mu);  // ns + '\0' + name -> id
    std::deque<std::string> dead ABSL_GUARDED_BY(mu);              // ids, in order of death
    size_t max_dead = 0;
    HeadStore* store = nullptr;
    bool stopping ABSL_GUARDED_BY(mu) = false;
    // While a restarted head waits for its nodes: until when, and the actors to start after.
    bool recovering ABSL_GUARDED_BY(mu) = false;
    std::chrono::steady_clock::time_point recover_until ABSL_GUARDED_BY(mu);
    std::vector<std::string> restart_after_recovery ABSL_GUARDED_BY(mu);
  };

  // Places the actor and waits for its process to construct it (on a thread of its own). An
  // actor no node can take now waits for one, however long that takes.
  static void StartActor(const std::shared_ptr<State>& state, const std::string& token,
                         const NodePicker& pick_node, const std::string& actor_id, bool restarted);
  // Moves a starting actor to ALIVE, or to DEAD with the reason it did not start.
  static void RecordStart(State& state, Actor& actor, bool started, const std::string& address,
                          const proto::StartActorReply& reply, const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);
  // The current incarnation died: RESTARTING (true: start the next one) or DEAD.
  static bool DiedLocked(State& state, Actor& actor, const std::string& cause, bool restartable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);
  // Writes the actor to the store, if there is one (a failure is logged: the head serves on).
  static void PersistLocked(State& state, const Actor& actor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);
  // Stamps the death time and forgets the oldest dead actors beyond the limit.
  static void RecordDeathLocked(State& state, Actor& actor) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu);

  const std::string token_;
  const NodePicker pick_node_;
  std::shared_ptr<State> state_;
};

}  // namespace lumen::scheduler
