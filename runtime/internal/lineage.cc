#include "runtime/internal/lineage.h"

#include <utility>

namespace lumen::internal {

void Lineage::Record(const std::string& id, Recipe recipe) {
  absl::MutexLock lock(&mu_);
  recipes_[id] = std::move(recipe);
}

void Lineage::Forget(const std::string& id) {
  absl::MutexLock lock(&mu_);
  recipes_.erase(id);
}

std::optional<Lineage::Recipe> Lineage::Take(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = recipes_.find(id);
  if (it == recipes_.end()) return std::nullopt;
  Recipe recipe = std::move(it->second);
  recipes_.erase(it);
  return recipe;
}

size_t Lineage::size() const {
  absl::MutexLock lock(&mu_);
  return recipes_.size();
}

}  // namespace lumen::internal
