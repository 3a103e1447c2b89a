// The address a node tells the cluster to reach it at, which may differ from the address it
// listens on (`lumen start --ip=0.0.0.0` listens everywhere but must never advertise 0.0.0.0).
//
//   absl::StatusOr<std::string> ip = AdvertisedIp("0.0.0.0", "", "10.0.0.1:6379");
//
// Order: the explicit --node-ip-address; the bind address unless it is a wildcard; the local
// address this host uses to reach the head (a routing lookup, nothing is sent); for a head or
// a head given by host name, the first non-loopback IPv4 address, else 127.0.0.1. Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace lumen::scheduler {

[[nodiscard]] absl::StatusOr<std::string> AdvertisedIp(const std::string& bind_ip,
                                                       const std::string& node_ip,
                                                       const std::string& head_address);

}  // namespace lumen::scheduler
