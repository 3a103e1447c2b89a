// The objects this process knows: those it owns (it Put them or submitted the task that makes
// them) and those it borrows (refs it received from other processes). Counts local references
// and, for owned objects, the processes that borrow them; frees an owned object when no
// reference remains anywhere.
//
// Thread-safe. Callbacks and handlers run without the table's lock held, on the thread that
// made the object ready or dropped the last reference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

using ValuePtr = std::shared_ptr<const proto::Value>;

class ObjectTable {
 public:
  using Callback = std::function<void(const ValuePtr&)>;
  // An owned object was freed; `value` is its value if it had one (so a store copy can go).
  using FreeHandler = std::function<void(const std::string& id, const ValuePtr& value)>;
  // This process started (add) or stopped borrowing an object of `owner`.
  using BorrowHandler =
      std::function<void(const std::string& owner, const std::string& id, bool add)>;
  // A handoff of a ref to an object of another `owner` (see Handoff), to be sent to that owner
  // after this process's earlier borrow updates to it.
  using HandoffHandler =
      std::function<void(const std::string& owner, const std::string& id, const std::string& token,
                         bool give, const std::string& taker)>;

  ObjectTable(std::string self_address, FreeHandler on_free, BorrowHandler on_borrow,
              HandoffHandler on_handoff = nullptr);

  // A new owned object whose value a task will produce.
  void AddOwnedPending(const std::string& id);
  // A new owned object with its value (Put). The refs inside the value (value->contained) are
  // held until the object is freed.
  void AddOwnedReady(const std::string& id, ValuePtr value);
  // Gives a pending object its value and runs its callbacks. For an owned object freed while
  // pending, hands the value to the free handler instead; for anything else unknown (a
  // borrowed object dropped before its fetch was answered) drops it. An owned object's value
  // is a task's result: the refs inside it are held while the object lives, and the worker's
  // handoff of each (named by value->handoff_token()) is taken.
  void SetValue(const std::string& id, const ValuePtr& value);

  void AddLocalRef(const std::string& id, const std::string& owner);
  void RemoveLocalRef(const std::string& id);
  // Owner side: `borrower` (a process address) holds refs to `id` / dropped them.
  void AddBorrower(const std::string& id, const std::string& borrower);
  void RemoveBorrower(const std::string& id, const std::string& borrower);
  // Owner side: `borrower` is gone (its process died): it borrows nothing any more, and
  // handoffs it was to take are dropped, now and when they arrive later.
  void RemoveBorrowerEverywhere(const std::string& borrower);
  // A process connected from `address` (a new process may reuse a dead one's port).
  void PeerConnected(const std::string& address);
  // Owner side: a ref to `id` was serialized into a value; keep the object until a borrower
  // registers.
  void MarkEscaped(const std::string& id);
  // Moves a ref between two processes (a task's caller and its worker, either way) without a
  // moment in which the owner sees no holder, although their update streams to the owner are
  // not ordered with each other: the sender gives the handoff `token` before it lets go, the
  // receiver takes it once it holds the ref (after its own add on its stream). The owner keeps
  // the object while a token is given and not yet taken; a take that arrives first cancels the
  // give in advance. A give names its `taker`: if the taker dies first (see
  // RemoveBorrowerEverywhere) the give is dropped. Applied here when this process owns `id`,
  // else sent to `owner`.
  void Handoff(const std::string& id, const std::string& owner, const std::string& token, bool give,
               const std::string& taker = "");
  // Owner side: a handoff of `id` arrived (or was made locally).
  void ApplyHandoff(const std::string& id, const std::string& token, bool give,
                    const std::string& taker = "");

  // The value if ready. Otherwise registers `callback` (run once it is) and returns nullptr;
  // *fetch is set when this process must ask the owner for a borrowed object's value (once).
  // An owned object this process no longer knows gets an OBJECT_LOST error value.
  // *subscription (if given) is set to a number that Unsubscribe takes, or to 0 when the value
  // was returned at once.
  ValuePtr GetOrSubscribe(const std::string& id, const std::string& owner, Callback callback,
                          bool* fetch, uint64_t* subscription = nullptr);
  // Drops a callback that has not run (a Get or Wait that timed out). A borrowed entry that
  // nothing references any more goes with it.
  void Unsubscribe(const std::string& id, uint64_t subscription);
  // Value if ready, else nullptr.
  ValuePtr Peek(const std::string& id) const;
  // Owned objects whose value lives in the store of node `node_id`.
  std::vector<std::string> OwnedStoredOn(const std::string& node_id) const;
  // Replaces the value of an owned object (lost with its node): with `value`, or with none, to
  // wait for a new one (its task runs again). The refs the old value held are let go.
  void ResetValue(const std::string& id, const ValuePtr& value);
  // Borrowed objects of `owner` that are not ready, or whose value is in a store (which frees
  // it with its owner), fail with OWNER_DIED. Inline values already here stay readable.
  void FailBorrowedFrom(const std::string& owner, const std::string& message);
  // Ids of borrowed objects that wait for `owner` to answer (to ask again after reconnecting).
  std::vector<std::string> PendingFetches(const std::string& owner) const;

  size_t NumOwned() const;
  size_t NumBorrowed() const;
  // Callbacks registered by GetOrSubscribe that have not run or been cancelled yet.
  size_t NumSubscriptions() const;
  const std::string& self_address() const { return self_address_; }

 private:
  struct Entry {
    bool owned = false;
    std::string owner;
    int64_t local_refs = 0;
    absl::flat_hash_set<std::string> borrowers;
    bool escaped = false;
    // Handoff tokens given and not taken yet, and taken before they were given (see Handoff).
    absl::flat_hash_map<std::string, std::string> given;  // token -> taker
    absl::flat_hash_set<std::string> taken;
    bool fetch_requested = false;
    ValuePtr value;
    std::vector<std::pair<uint64_t, Callback>> callbacks;
    // Refs inside the value that this entry holds a local ref to until it is freed.
    std::vector<proto::RefInfo> contained;
  };
  // What freeing an owned entry leaves to do once the lock is released.
  struct Freed {
    bool freed = false;
    ValuePtr value;
    std::vector<proto::RefInfo> contained;
  };

  // Erases an owned entry nobody references; `freed->freed` says whether it did.
  void MaybeFreeLocked(const std::string& id, Entry& entry, Freed* freed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the free handler and drops the refs the freed value held.
  void FinishFree(const std::string& id, Freed& freed) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a local ref to each ref inside `value`, to be stored in the entry's contained.
  std::vector<proto::RefInfo> HoldContained(const ValuePtr& value) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string self_address_;
  const FreeHandler on_free_;
  const BorrowHandler on_borrow_;
  const HandoffHandler on_handoff_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Owned objects freed before their value arrived: the value, when it comes, is released.
  absl::flat_hash_set<std::string> freed_pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_subscription_ ABSL_GUARDED_BY(mu_) = 1;
  // Borrowers that died (see RemoveBorrowerEverywhere).
  absl::flat_hash_set<std::string> dead_peers_ ABSL_GUARDED_BY(mu_);
};

// An error value of the given kind.
ValuePtr MakeErrorValue(proto::ErrorInfo::Kind kind, const std::string& message);

}  // namespace lumen::internal
