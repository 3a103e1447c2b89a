// ObjectRef<T>: a typed reference to an immutable object that a task returns or Put creates.
//
//   lumen::ObjectRef<int> ref = lumen::Task(Plus).Remote(1, 2);
//   int value = *lumen::Get(ref);
//
// A ref is a value: copy it, store it, pass it to tasks or put it inside other objects. The
// object lives while any ref to it exists anywhere in the cluster. Thread-compatible.
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "lumen/internal/runtime_api.h"

namespace lumen {

template <typename T>
class ObjectRef {
 public:
  using ValueType = T;

  ObjectRef() = default;
  explicit ObjectRef(internal::RefParts parts) : parts_(std::move(parts)) { Acquire(); }
  ObjectRef(const ObjectRef& other) : parts_(other.parts_) { Acquire(); }
  ObjectRef(ObjectRef&& other) noexcept : parts_(std::move(other.parts_)) {
    other.parts_.object_id.clear();
  }
  ObjectRef& operator=(const ObjectRef& other) {
    if (this != &other) {
      Release();
      parts_ = other.parts_;
      Acquire();
    }
    return *this;
  }
  ObjectRef& operator=(ObjectRef&& other) noexcept {
    if (this != &other) {
      Release();
      parts_ = std::move(other.parts_);
      other.parts_.object_id.clear();
    }
    return *this;
  }
  ~ObjectRef() { Release(); }

  bool valid() const { return !parts_.object_id.empty(); }
  // Binary object id (16 bytes).
  const std::string& id() const { return parts_.object_id; }
  // host:port of the process that owns the object.
  const std::string& owner_address() const { return parts_.owner_address; }
  const internal::RefParts& parts() const { return parts_; }

  bool operator==(const ObjectRef& other) const {
    return parts_.object_id == other.parts_.object_id;
  }

  template <class Archive>
  void save(Archive& archive) const {
    if (valid()) internal::OnReferenceSerialized(parts_.object_id, parts_.owner_address);
    archive(parts_.object_id, parts_.owner_address);
  }
  template <class Archive>
  void load(Archive& archive) {
    Release();
    archive(parts_.object_id, parts_.owner_address);
    Acquire();
  }

 private:
  void Acquire() {
    if (valid()) internal::AddLocalReference(parts_.object_id, parts_.owner_address);
  }
  void Release() {
    if (valid() && internal::RuntimeActive()) internal::RemoveLocalReference(parts_.object_id);
    parts_.object_id.clear();
  }

  internal::RefParts parts_;
};

template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};

}  // namespace lumen
