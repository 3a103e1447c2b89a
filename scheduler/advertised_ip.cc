#include "scheduler/advertised_ip.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace lumen::scheduler {
namespace {

bool IsWildcard(const std::string& ip) { return ip.empty() || ip == "0.0.0.0"; }

std::string FirstNonLoopback() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "127.0.0.1";
  std::string found = "127.0.0.1";
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr, ip, sizeof(ip));
    if (std::string(ip).rfind("127.", 0) != 0) {
      found = ip;
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

// The local address the kernel would use to reach host:port (UDP connect sends nothing).
absl::StatusOr<std::string> RouteTo(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr) != 1) {
    return FirstNonLoopback();  // a host name: the head is not resolved here
  }
  peer.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  const bool ok = fd >= 0 &&
                  connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof(peer)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  const int error = errno;
  if (fd >= 0) close(fd);
  if (!ok) {
    return absl::UnavailableError(absl::StrCat("no route to the head at ", address, ": ",
                                               std::strerror(error), "; pass --node-ip-address"));
  }
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, ip, sizeof(ip));
  return std::string(ip);
}

}  // namespace

absl::StatusOr<std::string> AdvertisedIp(const std::string& bind_ip, const std::string& node_ip,
                                         const std::string& head_address) {
  if (!node_ip.empty()) {
    if (IsWildcard(node_ip)) {
      return absl::InvalidArgumentError("--node-ip-address must be a concrete address");
    }
    return node_ip;
  }
  if (!IsWildcard(bind_ip)) return bind_ip;
  if (!head_address.empty()) return RouteTo(head_address);
  return FirstNonLoopback();
}

}  // namespace lumen::scheduler
