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

  ObjectTable(std::string self_address, FreeHandler on_free, BorrowHandler on_borrow);

  // A new owned object whose value a task will produce.
  void AddOwnedPending(const std::string& id);
  // A new owned object with its value (Put).
  void AddOwnedReady(const std::string& id, ValuePtr value);
  // Gives a pending object its value and runs its callbacks. For an owned object freed while
  // pending, hands the value to the free handler instead; for anything else unknown (a
  // borrowed object dropped before its fetch was answered) drops it.
  void SetValue(const std::string& id, const ValuePtr& value);

  void AddLocalRef(const std::string& id, const std::string& owner);
  void RemoveLocalRef(const std::string& id);
  // Owner side: `borrower` (a process address) holds refs to `id` / dropped them.
  void AddBorrower(const std::string& id, const std::string& borrower);
  void RemoveBorrower(const std::string& id, const std::string& borrower);
  // Owner side: a ref to `id` was serialized into a value; keep the object until a borrower
  // registers.
  void MarkEscaped(const std::string& id);

  // The value if ready. Otherwise registers `callback` (run once it is) and returns nullptr;
  // *fetch is set when this process must ask the owner for a borrowed object's value (once).
  // An owned object this process no longer knows gets an OBJECT_LOST error value.
  ValuePtr GetOrSubscribe(const std::string& id, const std::string& owner, Callback callback,
                          bool* fetch);
  // Value if ready, else nullptr.
  ValuePtr Peek(const std::string& id) const;
  // Borrowed objects of `owner` that are not ready fail with OWNER_DIED.
  void FailBorrowedFrom(const std::string& owner, const std::string& message);
  // Ids of borrowed objects that wait for `owner` to answer (to ask again after reconnecting).
  std::vector<std::string> PendingFetches(const std::string& owner) const;

  size_t NumOwned() const;
  size_t NumBorrowed() const;
  const std::string& self_address() const { return self_address_; }

 private:
  struct Entry {
    bool owned = false;
    std::string owner;
    int64_t local_refs = 0;
    absl::flat_hash_set<std::string> borrowers;
    bool escaped = false;
    bool fetch_requested = false;
    ValuePtr value;
    std::vector<Callback> callbacks;
  };

  // Erases an owned entry nobody references; returns true if it did.
  bool MaybeFreeLocked(const std::string& id, Entry& entry, ValuePtr* freed_value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string self_address_;
  const FreeHandler on_free_;
  const BorrowHandler on_borrow_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Owned objects freed before their value arrived: the value, when it comes, is released.
  absl::flat_hash_set<std::string> freed_pending_ ABSL_GUARDED_BY(mu_);
};

// An error value of the given kind.
ValuePtr MakeErrorValue(proto::ErrorInfo::Kind kind, const std::string& message);

}  // namespace lumen::internal
