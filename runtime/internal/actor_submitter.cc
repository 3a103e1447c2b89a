#include "runtime/internal/actor_submitter.h"

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/rpc.h"
#include "runtime/internal/object_table.h"

namespace lumen::internal {

struct ActorSubmitter::Actor {
  enum class State { kIdle, kLookingUp, kConnecting, kConnected, kDead };
  State state = State::kIdle;
  std::string address;  // the worker's address while connecting or connected
  std::string node_id;
  std::string name;
  int num_restarts = -1;  // the incarnation last seen; -1 before the first lookup
  std::shared_ptr<net::Connection> conn;
  std::string death_cause;
  int max_task_retries = 0;
  int max_concurrency = 1;
  uint64_t next_ticket = 0;
  // Calls in order; null until their arguments are resolved.
  std::map<uint64_t, std::unique_ptr<PendingTask>> queue;
  absl::flat_hash_map<uint64_t, std::unique_ptr<PendingTask>> in_flight;  // by ticket
  // Calls that were running when the connection broke: failed once the head says why.
  std::vector<std::unique_ptr<PendingTask>> orphaned;
  std::string lost_reason;
  std::string stale_address;  // the address whose connection broke
  int failures = 0;           // failed connects in a row (backoff)
  uint64_t connect_attempt = 0;
  absl::Time head_unreachable_since = absl::InfiniteFuture();
  std::shared_ptr<net::InFlightLimiter> limiter;
  std::shared_ptr<asio::steady_timer> retry_timer;

  std::string Who(const std::string& actor_id) const {
    return name.empty() ? "actor " + ShortHex(actor_id) : "actor '" + name + "'";
  }
};

ActorSubmitter::ActorSubmitter(Options options, net::IoPool& io, proto::HeadService::Stub* head)
    : options_(std::move(options)), io_(io), head_(head) {}

ActorSubmitter::~ActorSubmitter() { Shutdown(); }

std::shared_ptr<net::InFlightLimiter> ActorSubmitter::Limiter(const std::string& actor_id) {
  absl::MutexLock lock(&mu_);
  auto& actor = actors_[actor_id];
  if (actor == nullptr) actor = std::make_unique<Actor>();
  if (actor->limiter == nullptr) {
    actor->limiter = std::make_shared<net::InFlightLimiter>(options_.limits);
    if (shutdown_) actor->limiter->Cancel();
  }
  return actor->limiter;
}

uint64_t ActorSubmitter::Reserve(const std::string& actor_id) {
  absl::MutexLock lock(&mu_);
  auto& actor = actors_[actor_id];
  if (actor == nullptr) actor = std::make_unique<Actor>();
  const uint64_t ticket = actor->next_ticket++;
  actor->queue.emplace(ticket, nullptr);
  return ticket;
}

void ActorSubmitter::Fill(const std::string& actor_id, uint64_t ticket,
                          std::unique_ptr<PendingTask> task) {
  Effects effects;
  {
    absl::MutexLock lock(&mu_);
    auto& actor = actors_[actor_id];
    if (actor == nullptr) actor = std::make_unique<Actor>();
    if (shutdown_) {
      actor->queue.erase(ticket);
      effects.failures.emplace_back(std::move(task), proto::ErrorInfo::SYSTEM,
                                    "lumen::Shutdown() was called");
    } else {
      actor->queue[ticket] = std::move(task);
      DrainLocked(actor_id, *actor, &effects);
    }
  }
  Apply(effects);
}

void ActorSubmitter::Skip(const std::string& actor_id, uint64_t ticket) {
  Effects effects;
  {
    absl::MutexLock lock(&mu_);
    auto& actor = actors_[actor_id];
    if (actor == nullptr) return;
    actor->queue.erase(ticket);
    if (!shutdown_) DrainLocked(actor_id, *actor, &effects);
  }
  Apply(effects);
}

void ActorSubmitter::DrainLocked(const std::string& actor_id, Actor& actor, Effects* effects) {
  switch (actor.state) {
    case Actor::State::kDead:
      while (!actor.queue.empty() && actor.queue.begin()->second != nullptr) {
        effects->failures.emplace_back(std::move(actor.queue.begin()->second),
                                       proto::ErrorInfo::ACTOR_DIED, actor.death_cause);
        actor.queue.erase(actor.queue.begin());
      }
      return;
    case Actor::State::kIdle:
      if (actor.queue.empty()) return;
      actor.state = Actor::State::kLookingUp;
      effects->resolve.push_back(actor_id);
      return;
    case Actor::State::kLookingUp:
    case Actor::State::kConnecting:
      return;
    case Actor::State::kConnected:
      break;
  }
  // With calls in flight on a one-at-a-time actor, the burst goes out with the next flush
  // (the actor could not start it earlier anyway); an idle or concurrent actor gets it now.
  const bool flush_now = actor.in_flight.empty() || actor.max_concurrency > 1;
  bool sent = false;
  while (!actor.queue.empty() && actor.queue.begin()->second != nullptr) {
    const uint64_t ticket = actor.queue.begin()->first;
    std::unique_ptr<PendingTask> task = std::move(actor.queue.begin()->second);
    actor.queue.erase(actor.queue.begin());
    task->spec.set_seq(ticket);
    proto::Frame frame;
    frame.mutable_task()->Swap(&task->spec);
    actor.conn->Send(frame, /*flush=*/false);
    frame.mutable_task()->Swap(&task->spec);
    RecordPushed(options_.events, task->spec);
    actor.in_flight.emplace(ticket, std::move(task));
    sent = true;
  }
  if (sent && flush_now) effects->flush.push_back(actor.conn);
}

void ActorSubmitter::Apply(Effects& effects) {
  for (auto& conn : effects.flush) conn->Flush();
  for (auto& actor_id : effects.resolve) Lookup(actor_id);
  if (options_.on_dead) {
    for (auto& actor_id : effects.dead) options_.on_dead(actor_id);
  }
  for (auto& [task, kind, message] : effects.failures) {
    auto on_done = std::move(task->on_done);
    if (on_done) on_done(*task, MakeErrorValue(kind, message));
  }
  effects = Effects();
}

void ActorSubmitter::Lookup(const std::string& actor_id) {
  struct Call {
    grpc::ClientContext context;
    proto::GetActorInfoRequest request;
    proto::ActorInfo reply;
  };
  auto call = std::make_shared<Call>();
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    ++lookups_in_flight_;
    const Actor& actor = *actors_[actor_id];
    call->request.set_stale_address(actor.stale_address);
    // After a lost connection the head gets a few seconds to learn whether the actor died.
    call->request.set_wait_ms(actor.stale_address.empty() ? 1000 : 3000);
  }
  call->request.set_actor_id(actor_id);
  PrepareContext(&call->context, options_.token, absl::Seconds(15));
  head_->async()->GetActorInfo(&call->context, &call->request, &call->reply,
                               [this, call, actor_id](const grpc::Status& status) {
                                 OnLookup(actor_id, status, call->reply);
                                 absl::MutexLock lock(&mu_);
                                 --lookups_in_flight_;
                               });
}

void ActorSubmitter::OnLookup(const std::string& actor_id, const grpc::Status& status,
                              const proto::ActorInfo& info) {
  Effects effects;
  std::string connect_to;
  uint64_t attempt = 0;
  int retry_after_failures = 0;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    Actor& actor = *actors_[actor_id];
    const std::string who = actor.Who(actor_id);
    const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (unreachable) {
      const absl::Time now = absl::Now();
      if (actor.head_unreachable_since == absl::InfiniteFuture()) {
        actor.head_unreachable_since = now;
      }
      if (now - actor.head_unreachable_since < options_.head_unreachable_timeout) {
        retry_after_failures = ++actor.failures;
      } else {
        // Nobody can say where the actor is: fail what waits, look again on the next call.
        const std::string message = absl::StrCat(
            "cannot reach the head to find the ", who, " for ",
            absl::FormatDuration(options_.head_unreachable_timeout), ": ", status.error_message());
        for (auto& task : actor.orphaned) {
          effects.failures.emplace_back(std::move(task), proto::ErrorInfo::ACTOR_UNAVAILABLE,
                                        message);
        }
        actor.orphaned.clear();
        for (auto it = actor.queue.begin(); it != actor.queue.end();) {
          if (it->second == nullptr) {
            ++it;  // reserved, arguments not resolved yet: stays in its place
            continue;
          }
          effects.failures.emplace_back(std::move(it->second), proto::ErrorInfo::ACTOR_UNAVAILABLE,
                                        message);
          it = actor.queue.erase(it);
        }
        actor.head_unreachable_since = absl::InfiniteFuture();
        actor.state = Actor::State::kIdle;
      }
    } else if (!status.ok() || info.state() == proto::ActorInfo::DEAD) {
      actor.head_unreachable_since = absl::InfiniteFuture();
      const std::string cause = status.ok() ? info.death_cause() : status.error_message();
      for (auto& task : actor.orphaned) {
        effects.failures.emplace_back(
            std::move(task), proto::ErrorInfo::ACTOR_DIED,
            absl::StrCat("the ", who, " died while running ", task->spec.function(), ": ", cause));
      }
      actor.orphaned.clear();
      if (!info.name().empty()) actor.name = info.name();
      actor.state = Actor::State::kDead;
      actor.death_cause = absl::StrCat("the ", actor.Who(actor_id), " is dead: ", cause);
      if (status.ok()) effects.dead.push_back(actor_id);
      DrainLocked(actor_id, actor, &effects);
    } else if (info.state() != proto::ActorInfo::ALIVE) {
      // Pending or restarting: the head holds each lookup while that lasts.
      actor.head_unreachable_since = absl::InfiniteFuture();
      effects.resolve.push_back(actor_id);
    } else {
      actor.head_unreachable_since = absl::InfiniteFuture();
      const bool restarted = actor.num_restarts >= 0 && info.num_restarts() > actor.num_restarts;
      for (auto& task : actor.orphaned) {
        if (restarted) {
          effects.failures.emplace_back(
              std::move(task), proto::ErrorInfo::ACTOR_DIED,
              absl::StrCat("the ", who, " died while running ", task->spec.function(), " (",
                           info.death_cause(),
                           ") and was restarted; the call is not retried (SetMaxTaskRetries "
                           "allows it)"));
        } else {
          effects.failures.emplace_back(
              std::move(task), proto::ErrorInfo::ACTOR_UNAVAILABLE,
              absl::StrCat("the connection to the ", who, " at ", actor.stale_address,
                           " broke while it ran ", task->spec.function(), " (", actor.lost_reason,
                           "); the head still reports the actor alive, so it may come back, "
                           "but this call may or may not have run and is not retried "
                           "(SetMaxTaskRetries allows it)"));
        }
      }
      actor.orphaned.clear();
      actor.name = info.name();
      actor.node_id = info.node_id();
      actor.num_restarts = info.num_restarts();
      actor.max_task_retries = info.max_task_retries();
      actor.max_concurrency = info.max_concurrency();
      actor.address = info.address();
      actor.state = Actor::State::kConnecting;
      connect_to = info.address();
      attempt = ++actor.connect_attempt;
      ++lookups_in_flight_;
    }
  }
  Apply(effects);
  if (retry_after_failures > 0) RetryLater(actor_id, retry_after_failures);
  if (connect_to.empty()) return;
  net::Connection::AsyncConnect(
      io_, connect_to, absl::Seconds(10), options_.connection,
      [this, actor_id, attempt](absl::StatusOr<std::shared_ptr<net::Connection>> conn) {
        OnConnected(actor_id, attempt, std::move(conn));
        absl::MutexLock lock(&mu_);
        --lookups_in_flight_;
      });
}

void ActorSubmitter::OnConnected(const std::string& actor_id, uint64_t attempt,
                                 absl::StatusOr<std::shared_ptr<net::Connection>> result) {
  Effects effects;
  int failures = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = actors_.find(actor_id);
    if (shutdown_ || it == actors_.end() || it->second->connect_attempt != attempt ||
        it->second->state != Actor::State::kConnecting) {
      if (result.ok()) (*result)->Close("not needed");
      return;
    }
    Actor& actor = *it->second;
    if (!result.ok()) {
      // The head said alive but the address refuses: it may be dying or restarting. Ask again
      // after a pause; never declared dead for this alone.
      LUMEN_LOG(DEBUG) << "connecting to " << actor.Who(actor_id) << ": " << result.status();
      actor.stale_address = actor.address;
      actor.lost_reason = std::string(result.status().message());
      actor.state = Actor::State::kLookingUp;
      failures = ++actor.failures;
    } else {
      std::shared_ptr<net::Connection> conn = *result;
      actor.failures = 0;
      actor.stale_address.clear();
      actor.state = Actor::State::kConnected;
      actor.conn = conn;
      std::weak_ptr<net::Connection> weak = conn;
      conn->Start({
          .on_frame =
              [this, actor_id, weak](net::Connection&, proto::Frame& frame) {
                if (auto c = weak.lock(); c && frame.has_reply()) {
                  OnReply(actor_id, c, *frame.mutable_reply());
                }
              },
          .on_batch_end = [](net::Connection& c) { c.Flush(); },
          .on_close =
              [this, actor_id, weak](net::Connection&, const std::string& reason) {
                if (auto c = weak.lock()) OnClosed(actor_id, c, reason);
              },
      });
      conn->Send(net::MakeHello(options_.token, ""), /*flush=*/false);
      effects.flush.push_back(conn);
      DrainLocked(actor_id, actor, &effects);
    }
  }
  if (failures > 0) RetryLater(actor_id, failures);
  Apply(effects);
}

void ActorSubmitter::RetryLater(const std::string& actor_id, int failures) {
  const int64_t delay_ms = std::min<int64_t>(2000, int64_t{50} << std::min(failures, 6));
  auto timer = std::make_shared<asio::steady_timer>(io_.context());
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    actors_[actor_id]->retry_timer = timer;
    ++lookups_in_flight_;
  }
  timer->expires_after(std::chrono::milliseconds(delay_ms));
  timer->async_wait([this, actor_id](const std::error_code& error) {
    if (!error) Lookup(actor_id);
    absl::MutexLock lock(&mu_);
    --lookups_in_flight_;
  });
}

void ActorSubmitter::OnReply(const std::string& actor_id,
                             const std::shared_ptr<net::Connection>& conn,
                             proto::TaskReply& reply) {
  std::unique_ptr<PendingTask> task;
  {
    absl::MutexLock lock(&mu_);
    Actor& actor = *actors_[actor_id];
    auto it = actor.in_flight.find(reply.seq());
    if (it == actor.in_flight.end()) return;
    task = std::move(it->second);
    actor.in_flight.erase(it);
  }
  auto value = std::make_shared<proto::Value>();
  value->Swap(reply.mutable_result());
  auto on_done = std::move(task->on_done);
  if (on_done) on_done(*task, std::move(value));
}

void ActorSubmitter::OnClosed(const std::string& actor_id,
                              const std::shared_ptr<net::Connection>& conn,
                              const std::string& reason) {
  Effects effects;
  {
    absl::MutexLock lock(&mu_);
    Actor& actor = *actors_[actor_id];
    if (actor.conn != conn || shutdown_) return;
    actor.conn = nullptr;
    actor.stale_address = actor.address;
    actor.lost_reason = reason;
    for (auto& [ticket, task] : actor.in_flight) {
      if (task->spec.attempt() < actor.max_task_retries) {
        task->spec.set_attempt(task->spec.attempt() + 1);
        RecordRetrying(options_.events, task->spec, "its actor's connection broke: " + reason);
        actor.queue[ticket] = std::move(task);  // back in its place in the order
      } else {
        actor.orphaned.push_back(std::move(task));
      }
    }
    actor.in_flight.clear();
    // Look the actor up again: to reconnect, and to learn the cause for orphaned calls.
    actor.state = Actor::State::kLookingUp;
    effects.resolve.push_back(actor_id);
    LUMEN_LOG(DEBUG) << "connection to " << actor.Who(actor_id) << " lost: " << reason;
  }
  Apply(effects);
}

void ActorSubmitter::OnNodeDeath(const std::string& node_id, const std::string& reason) {
  std::vector<std::shared_ptr<net::Connection>> doomed;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, actor] : actors_) {
      if (actor->node_id == node_id && actor->conn != nullptr) doomed.push_back(actor->conn);
    }
  }
  for (auto& conn : doomed) conn->Close(reason);
}

void ActorSubmitter::Shutdown() {
  Effects effects;
  std::vector<std::shared_ptr<net::Connection>> conns;
  std::vector<std::shared_ptr<asio::steady_timer>> timers;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    const std::string message = "lumen::Shutdown() was called";
    for (auto& [id, actor] : actors_) {
      if (actor->limiter) actor->limiter->Cancel();
      if (actor->conn) conns.push_back(actor->conn);
      if (actor->retry_timer) timers.push_back(actor->retry_timer);
      for (auto& [ticket, task] : actor->queue) {
        if (task) effects.failures.emplace_back(std::move(task), proto::ErrorInfo::SYSTEM, message);
      }
      for (auto& [ticket, task] : actor->in_flight) {
        effects.failures.emplace_back(std::move(task), proto::ErrorInfo::SYSTEM, message);
      }
      for (auto& task : actor->orphaned) {
        effects.failures.emplace_back(std::move(task), proto::ErrorInfo::SYSTEM, message);
      }
      actor->queue.clear();
      actor->in_flight.clear();
      actor->orphaned.clear();
    }
  }
  for (auto& conn : conns) conn->Close("shutting down");
  for (auto& timer : timers) {
    asio::post(io_.context(), [timer] { timer->cancel(); });
  }
  Apply(effects);
  // Lookups, connects and timers in flight call back into this object: wait for them.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int* n) { return *n == 0; }, &lookups_in_flight_),
                       absl::Seconds(20));
}

}  // namespace lumen::internal
