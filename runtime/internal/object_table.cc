#include "runtime/internal/object_table.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace lumen::internal {

ValuePtr MakeErrorValue(proto::ErrorInfo::Kind kind, const std::string& message) {
  auto value = std::make_shared<proto::Value>();
  value->mutable_error()->set_kind(kind);
  value->mutable_error()->set_message(message);
  return value;
}

ObjectTable::ObjectTable(std::string self_address, FreeHandler on_free, BorrowHandler on_borrow,
                         HandoffHandler on_handoff)
    : self_address_(std::move(self_address)),
      on_free_(std::move(on_free)),
      on_borrow_(std::move(on_borrow)),
      on_handoff_(std::move(on_handoff)) {}

void ObjectTable::AddOwnedPending(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[id];
  entry.owned = true;
  entry.owner = self_address_;
}

std::vector<proto::RefInfo> ObjectTable::HoldContained(const ValuePtr& value) {
  std::vector<proto::RefInfo> held;
  if (value == nullptr) return held;
  for (const proto::RefInfo& ref : value->contained()) {
    AddLocalRef(ref.object_id(), ref.owner_address());
    held.push_back(ref);
  }
  return held;
}

void ObjectTable::AddOwnedReady(const std::string& id, ValuePtr value) {
  std::vector<proto::RefInfo> held = HoldContained(value);
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[id];
  entry.owned = true;
  entry.owner = self_address_;
  entry.value = std::move(value);
  entry.contained = std::move(held);
}

void ObjectTable::SetValue(const std::string& id, const ValuePtr& value) {
  // A task's result holds the refs inside it: taken before the lock, given back below unless
  // an owned pending entry keeps them.
  std::vector<proto::RefInfo> held;
  if (value->contained_size() > 0) held = HoldContained(value);
  std::vector<Callback> callbacks;
  bool orphan = false;
  bool result = false;  // a task result of ours: the worker's handoffs are taken
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      // Only an owned object freed while its task ran has a store copy to release here; the
      // late answer to a borrower's fetch must not free its owner's object.
      orphan = freed_pending_.erase(id) > 0;
      result = orphan;
    } else {
      result = it->second.owned;
      if (it->second.value == nullptr) {
        it->second.value = value;
        if (result) {
          it->second.contained = std::move(held);
          held.clear();
        }
        for (auto& [subscription, callback] : it->second.callbacks) {
          callbacks.push_back(std::move(callback));
        }
        it->second.callbacks.clear();
      }
    }
  }
  if (result) {
    for (const proto::RefInfo& ref : value->contained()) {
      Handoff(ref.object_id(), ref.owner_address(), value->handoff_token(), /*give=*/false);
    }
  }
  for (const proto::RefInfo& ref : held) RemoveLocalRef(ref.object_id());
  if (orphan) {
    if (on_free_) on_free_(id, value);
    return;
  }
  for (auto& callback : callbacks) callback(value);
}

void ObjectTable::AddLocalRef(const std::string& id, const std::string& owner) {
  bool borrow_started = false;
  std::string borrow_owner;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = entries_.try_emplace(id);
    Entry& entry = it->second;
    if (inserted) {
      entry.owned = owner == self_address_;
      entry.owner = owner;
    }
    if (entry.local_refs++ == 0 && !entry.owned) {
      borrow_started = true;
      borrow_owner = entry.owner;
    }
  }
  if (borrow_started && on_borrow_) on_borrow_(borrow_owner, id, true);
}

void ObjectTable::RemoveLocalRef(const std::string& id) {
  bool borrow_ended = false;
  std::string borrow_owner;
  Freed freed;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& entry = it->second;
    if (--entry.local_refs > 0) return;
    entry.local_refs = 0;
    if (entry.owned) {
      MaybeFreeLocked(id, entry, &freed);
    } else {
      borrow_ended = true;
      borrow_owner = entry.owner;
      entries_.erase(it);
    }
  }
  if (borrow_ended && on_borrow_) on_borrow_(borrow_owner, id, false);
  FinishFree(id, freed);
}

void ObjectTable::AddBorrower(const std::string& id, const std::string& borrower) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.owned) return;
  it->second.borrowers.insert(borrower);
  it->second.escaped = false;
}

void ObjectTable::RemoveBorrower(const std::string& id, const std::string& borrower) {
  Freed freed;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.owned) return;
    it->second.borrowers.erase(borrower);
    MaybeFreeLocked(id, it->second, &freed);
  }
  FinishFree(id, freed);
}

void ObjectTable::RemoveBorrowerEverywhere(const std::string& borrower) {
  std::vector<std::pair<std::string, Freed>> freed;
  {
    absl::MutexLock lock(&mu_);
    dead_peers_.insert(borrower);
    std::vector<std::string> ids;
    for (auto& [id, entry] : entries_) {
      if (!entry.owned) continue;
      const bool borrowed = entry.borrowers.erase(borrower) > 0;
      const bool handed = absl::erase_if(entry.given, [&](const auto& given) {
                            return given.second == borrower;
                          }) > 0;
      if (borrowed || handed) ids.push_back(id);
    }
    for (const std::string& id : ids) {
      Freed one;
      MaybeFreeLocked(id, entries_[id], &one);
      if (one.freed) freed.emplace_back(id, std::move(one));
    }
  }
  for (auto& [id, one] : freed) FinishFree(id, one);
}

void ObjectTable::PeerConnected(const std::string& address) {
  absl::MutexLock lock(&mu_);
  dead_peers_.erase(address);
}

void ObjectTable::MarkEscaped(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.owned) it->second.escaped = true;
}

void ObjectTable::Handoff(const std::string& id, const std::string& owner, const std::string& token,
                          bool give, const std::string& taker) {
  if (owner == self_address_) {
    ApplyHandoff(id, token, give, taker);
  } else if (on_handoff_) {
    on_handoff_(owner, id, token, give, taker);
  }
}

void ObjectTable::ApplyHandoff(const std::string& id, const std::string& token, bool give,
                               const std::string& taker) {
  Freed freed;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.owned) return;
    Entry& entry = it->second;
    if (give) {
      if (entry.taken.erase(token) == 0 && !dead_peers_.contains(taker)) {
        entry.given[token] = taker;
      }
    } else if (entry.given.erase(token) == 0) {
      entry.taken.insert(token);
    }
    MaybeFreeLocked(id, entry, &freed);
  }
  FinishFree(id, freed);
}

void ObjectTable::MaybeFreeLocked(const std::string& id, Entry& entry, Freed* freed) {
  if (entry.local_refs > 0 || !entry.borrowers.empty() || entry.escaped || !entry.given.empty()) {
    return;
  }
  if (entry.value == nullptr) freed_pending_.insert(id);
  freed->freed = true;
  freed->value = std::move(entry.value);
  freed->contained = std::move(entry.contained);
  entries_.erase(id);
}

void ObjectTable::FinishFree(const std::string& id, Freed& freed) {
  if (!freed.freed) return;
  if (on_free_) on_free_(id, freed.value);
  for (const proto::RefInfo& ref : freed.contained) RemoveLocalRef(ref.object_id());
}

ValuePtr ObjectTable::GetOrSubscribe(const std::string& id, const std::string& owner,
                                     Callback callback, bool* fetch, uint64_t* subscription) {
  *fetch = false;
  if (subscription != nullptr) *subscription = 0;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    if (owner == self_address_) {
      return MakeErrorValue(proto::ErrorInfo::OBJECT_LOST,
                            "object " + ShortHex(id) +
                                " was already freed by its owner (no reference to it was left)");
    }
    it = entries_.try_emplace(id).first;
    it->second.owner = owner;
  }
  Entry& entry = it->second;
  if (entry.value != nullptr) return entry.value;
  const uint64_t number = next_subscription_++;
  entry.callbacks.emplace_back(number, std::move(callback));
  if (subscription != nullptr) *subscription = number;
  if (!entry.owned && !entry.fetch_requested) {
    entry.fetch_requested = true;
    *fetch = true;
  }
  return nullptr;
}

void ObjectTable::Unsubscribe(const std::string& id, uint64_t subscription) {
  Callback dropped;  // destroyed after the lock is released
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Entry& entry = it->second;
  auto cb = entry.callbacks.begin();
  while (cb != entry.callbacks.end() && cb->first != subscription) ++cb;
  if (cb == entry.callbacks.end()) return;
  dropped = std::move(cb->second);
  entry.callbacks.erase(cb);
  // A borrowed object fetched for a Get that gave up: a late answer is dropped (see SetValue).
  if (!entry.owned && entry.local_refs == 0 && entry.callbacks.empty()) entries_.erase(it);
}

std::vector<std::string> ObjectTable::OwnedStoredOn(const std::string& node_id) const {
  std::vector<std::string> ids;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : entries_) {
    if (entry.owned && entry.value != nullptr && entry.value->has_stored() &&
        entry.value->stored().node_id() == node_id) {
      ids.push_back(id);
    }
  }
  return ids;
}

void ObjectTable::ResetValue(const std::string& id, const ValuePtr& value) {
  std::vector<proto::RefInfo> released;
  std::vector<Callback> callbacks;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.owned) return;
    Entry& entry = it->second;
    released = std::move(entry.contained);
    entry.contained.clear();
    entry.value = value;
    if (value != nullptr) {
      for (auto& [subscription, callback] : entry.callbacks)
        callbacks.push_back(std::move(callback));
      entry.callbacks.clear();
    }
  }
  for (const proto::RefInfo& ref : released) RemoveLocalRef(ref.object_id());
  for (auto& callback : callbacks) callback(value);
}

ValuePtr ObjectTable::Peek(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.value;
}

void ObjectTable::FailBorrowedFrom(const std::string& owner, const std::string& message) {
  std::vector<std::pair<std::vector<Callback>, ValuePtr>> to_run;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, entry] : entries_) {
      if (entry.owned || entry.owner != owner) continue;
      if (entry.value != nullptr && !entry.value->has_stored()) continue;
      entry.value = MakeErrorValue(
          proto::ErrorInfo::OWNER_DIED,
          absl::StrCat("the owner of object ", ShortHex(id), " (", owner, ") died: ", message));
      std::vector<Callback> callbacks;
      for (auto& [subscription, callback] : entry.callbacks) {
        callbacks.push_back(std::move(callback));
      }
      entry.callbacks.clear();
      to_run.emplace_back(std::move(callbacks), entry.value);
    }
  }
  for (auto& [callbacks, value] : to_run) {
    for (auto& callback : callbacks) callback(value);
  }
}

std::vector<std::string> ObjectTable::PendingFetches(const std::string& owner) const {
  std::vector<std::string> ids;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : entries_) {
    if (!entry.owned && entry.owner == owner && entry.value == nullptr && entry.fetch_requested) {
      ids.push_back(id);
    }
  }
  return ids;
}

size_t ObjectTable::NumOwned() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry.owned ? 1 : 0;
  return n;
}

size_t ObjectTable::NumBorrowed() const {
  absl::MutexLock lock(&mu_);
  return entries_.size() - [&] {
    size_t n = 0;
    for (const auto& [id, entry] : entries_) n += entry.owned ? 1 : 0;
    return n;
  }();
}

size_t ObjectTable::NumSubscriptions() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry.callbacks.size();
  return n;
}

}  // namespace lumen::internal
