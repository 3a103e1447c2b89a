#include "common/kv_limits.h"

#include "absl/strings/str_cat.h"
#include "lumen/kv.h"

namespace lumen::internal {

absl::Status CheckKvSizes(absl::string_view ns, absl::string_view key, absl::string_view what,
                          size_t value_size) {
  if (ns.size() > kv::kMaxNamespaceBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV namespace is ", ns.size(), " bytes; the limit is ", kv::kMaxNamespaceBytes));
  }
  if (key.size() > kv::kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV ", what, " is ", key.size(), " bytes; the limit is ", kv::kMaxKeyBytes));
  }
  if (value_size > kv::kMaxValueBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV value is ", value_size, " bytes; the limit is ", kv::kMaxValueBytes));
  }
  return absl::OkStatus();
}

}  // namespace lumen::internal
