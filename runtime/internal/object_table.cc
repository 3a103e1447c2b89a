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

ObjectTable::ObjectTable(std::string self_address, FreeHandler on_free, BorrowHandler on_borrow)
    : self_address_(std::move(self_address)),
      on_free_(std::move(on_free)),
      on_borrow_(std::move(on_borrow)) {}

void ObjectTable::AddOwnedPending(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[id];
  entry.owned = true;
  entry.owner = self_address_;
}

void ObjectTable::AddOwnedReady(const std::string& id, ValuePtr value) {
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[id];
  entry.owned = true;
  entry.owner = self_address_;
  entry.value = std::move(value);
}

void ObjectTable::SetValue(const std::string& id, const ValuePtr& value) {
  std::vector<Callback> callbacks;
  bool orphan = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      // Only an owned object freed while its task ran has a store copy to release here; the
      // late answer to a borrower's fetch must not free its owner's object.
      orphan = freed_pending_.erase(id) > 0;
      if (!orphan) return;
    } else if (it->second.value == nullptr) {
      it->second.value = value;
      callbacks.swap(it->second.callbacks);
    }
  }
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
  bool freed = false;
  ValuePtr freed_value;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& entry = it->second;
    if (--entry.local_refs > 0) return;
    entry.local_refs = 0;
    if (entry.owned) {
      freed = MaybeFreeLocked(id, entry, &freed_value);
    } else {
      borrow_ended = true;
      borrow_owner = entry.owner;
      entries_.erase(it);
    }
  }
  if (borrow_ended && on_borrow_) on_borrow_(borrow_owner, id, false);
  if (freed && on_free_) on_free_(id, freed_value);
}

void ObjectTable::AddBorrower(const std::string& id, const std::string& borrower) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.owned) return;
  it->second.borrowers.insert(borrower);
  it->second.escaped = false;
}

void ObjectTable::RemoveBorrower(const std::string& id, const std::string& borrower) {
  bool freed = false;
  ValuePtr freed_value;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.owned) return;
    it->second.borrowers.erase(borrower);
    freed = MaybeFreeLocked(id, it->second, &freed_value);
  }
  if (freed && on_free_) on_free_(id, freed_value);
}

void ObjectTable::MarkEscaped(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.owned) it->second.escaped = true;
}

bool ObjectTable::MaybeFreeLocked(const std::string& id, Entry& entry, ValuePtr* freed_value) {
  if (entry.local_refs > 0 || !entry.borrowers.empty() || entry.escaped) return false;
  if (entry.value == nullptr) freed_pending_.insert(id);
  *freed_value = std::move(entry.value);
  entries_.erase(id);
  return true;
}

ValuePtr ObjectTable::GetOrSubscribe(const std::string& id, const std::string& owner,
                                     Callback callback, bool* fetch) {
  *fetch = false;
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
  entry.callbacks.push_back(std::move(callback));
  if (!entry.owned && !entry.fetch_requested) {
    entry.fetch_requested = true;
    *fetch = true;
  }
  return nullptr;
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
      if (entry.owned || entry.owner != owner || entry.value != nullptr) continue;
      entry.value = MakeErrorValue(
          proto::ErrorInfo::OWNER_DIED,
          absl::StrCat("the owner of object ", ShortHex(id), " (", owner, ") died: ", message));
      to_run.emplace_back(std::move(entry.callbacks), entry.value);
      entry.callbacks.clear();
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

}  // namespace lumen::internal
