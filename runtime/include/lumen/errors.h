// Exceptions that Lumen's public API throws. Every message says what happened and what to do.
//
//   try { int v = *lumen::Get(ref); } catch (const lumen::TaskError& e) { e.remote_type(); }
#pragma once

#include <stdexcept>
#include <string>

namespace lumen {

// Base of every Lumen error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Remote code threw: carries the remote exception's type name, its message, the function and
// the node it ran on.
class TaskError : public Error {
 public:
  TaskError(std::string remote_type, std::string remote_message, std::string function,
            std::string node);
  const std::string& remote_type() const { return remote_type_; }
  const std::string& remote_message() const { return remote_message_; }
  const std::string& function() const { return function_; }
  const std::string& node() const { return node_; }

 private:
  std::string remote_type_;
  std::string remote_message_;
  std::string function_;
  std::string node_;
};

// The worker process running the task died (crash, signal, kill) more often than the task's
// max retries allow.
class WorkerCrashedError : public Error {
 public:
  using Error::Error;
};

// The actor is dead and will not be restarted, or it died while running this call.
class ActorDiedError : public Error {
 public:
  using Error::Error;
};

// The connection to the actor broke while this call was in flight (a stopped process, a
// network fault) and the head still reports the actor alive: the call may or may not have run
// and is not retried (SetMaxTaskRetries allows it); later calls go through once the actor
// answers again. A kind of ActorDiedError, so code that handles that handles this too.
class ActorUnavailableError : public ActorDiedError {
 public:
  using ActorDiedError::ActorDiedError;
};

// The object's value is gone and could not be rebuilt.
class ObjectLostError : public Error {
 public:
  using Error::Error;
};

// The process that owned the object died, so nobody can say where its value is.
class OwnerDiedError : public Error {
 public:
  using Error::Error;
};

// Get or Wait ran out of time before the object was ready.
class GetTimeoutError : public Error {
 public:
  using Error::Error;
};

// The node's object store cannot make room for the object.
class ObjectStoreFullError : public Error {
 public:
  using Error::Error;
};

}  // namespace lumen
