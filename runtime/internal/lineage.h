// How to make the owned objects whose values live in a node's store again: the task that made
// each (its spec, resources and the retries it has left), kept while the object lives. When
// the object's node dies, its owner re-runs the task (lineage reconstruction) if retries allow;
// values put with lumen::Put have no recipe and are lost with their node.
//
//   Lineage lineage;
//   lineage.Record(id, {spec, resources, /*retries_left=*/2});
//   if (auto recipe = lineage.Take(id)) ...  // re-submit recipe->spec
//
// Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "proto/wire.pb.h"

namespace lumen::internal {

class Lineage {
 public:
  struct Recipe {
    proto::TaskSpec spec;
    std::map<std::string, double> resources;
    int retries_left = 0;
    bool retry_exceptions = false;
  };

  // Remembers how `id` was made (replacing an earlier recipe).
  void Record(const std::string& id, Recipe recipe);
  // The object was freed: its recipe is not needed any more.
  void Forget(const std::string& id);
  // Removes and returns the recipe of `id`, if any.
  std::optional<Recipe> Take(const std::string& id);
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Recipe> recipes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lumen::internal
