// The size limits of the head's KV store (lumen/kv.h), checked by the head on every request
// and by clients before they send one, with the same message.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lumen::internal {

// INVALID_ARGUMENT naming the limit if the namespace, the key (called `what` in the message:
// "key", "prefix" ...) or the value is too large.
absl::Status CheckKvSizes(absl::string_view ns, absl::string_view key, absl::string_view what,
                          size_t value_size = 0);

}  // namespace lumen::internal
