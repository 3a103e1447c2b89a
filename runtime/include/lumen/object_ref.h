// ObjectRef<T>: a typed reference to an immutable object that a task returns or Put creates.
//
//   lumen::ObjectRef<int> ref = lumen::Task(Plus).Remote(1, 2);
//   int value = *lumen::Get(ref);
//
// A ref is a value: copy it, store it, pass it to tasks or put it inside other objects. The
// object lives while any ref to it exists anywhere in the cluster. Thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "lumen/internal/runtime_api.h"

namespace lumen {

namespace internal {

// One process-local reference to an object: created with the first ObjectRef, released to the
// runtime when the last copy goes, so that copying a ref costs an atomic increment.
class RefHolder {
 public:
  explicit RefHolder(RefParts parts) : parts_(std::move(parts)) {
    AddLocalReference(parts_.object_id, parts_.owner_address);
  }
  ~RefHolder() {
    if (RuntimeActive()) RemoveLocalReference(parts_.object_id);
  }
  RefHolder(const RefHolder&) = delete;
  RefHolder& operator=(const RefHolder&) = delete;
  const RefParts& parts() const { return parts_; }

 private:
  RefParts parts_;
};

inline const RefParts& EmptyRefParts() {
  static const RefParts empty;
  return empty;
}

}  // namespace internal

template <typename T>
class ObjectRef {
 public:
  using ValueType = T;

  ObjectRef() = default;
  explicit ObjectRef(internal::RefParts parts) {
    if (!parts.object_id.empty()) {
      holder_ = std::make_shared<const internal::RefHolder>(std::move(parts));
    }
  }

  bool valid() const { return holder_ != nullptr; }
  // Binary object id (16 bytes).
  const std::string& id() const { return parts().object_id; }
  // host:port of the process that owns the object.
  const std::string& owner_address() const { return parts().owner_address; }
  const internal::RefParts& parts() const {
    return holder_ != nullptr ? holder_->parts() : internal::EmptyRefParts();
  }

  bool operator==(const ObjectRef& other) const { return id() == other.id(); }

  template <class Archive>
  void save(Archive& archive) const {
    if (valid()) internal::OnReferenceSerialized(id(), owner_address());
    archive(id(), owner_address());
  }
  template <class Archive>
  void load(Archive& archive) {
    internal::RefParts parts;
    archive(parts.object_id, parts.owner_address);
    *this = ObjectRef(std::move(parts));
  }

 private:
  std::shared_ptr<const internal::RefHolder> holder_;
};

template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};

}  // namespace lumen
