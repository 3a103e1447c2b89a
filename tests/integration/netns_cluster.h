// A cluster of "hosts" for integration tests: one network namespace per host, each joined by a
// veth pair to a bridge that lives in a namespace of its own, with addresses in 10.231.0.0/24
// and loopback up. Every command the fixture runs (the lumen CLI, drivers) runs inside a host's
// namespace through `ip netns exec`, each host with a temp dir of its own (its /tmp/lumen), so
// nothing a test starts sends traffic outside the namespaces.
//
//   LUMEN_REQUIRE_NETNS();                        // fails loudly without root and `ip netns`
//   NetnsCluster cluster(2);                      // hosts 0 and 1
//   REQUIRE(cluster.StartHead({"--num-cpus=2"}).exit_code == 0);
//   REQUIRE(cluster.StartNode(1, {"--resources={\"special\": 1}"}).exit_code == 0);
//   CommandResult r = cluster.Run(1, {"lumen_multinode_driver", "special"}, 30);
//
// Teardown (destructor, also when a test throws): `lumen stop` on every host, SIGKILL by pid to
// whatever still runs in the namespaces, their shared-memory segments, the namespaces (and so
// the veths and the bridge) and the temp dirs. Namespaces and temp dirs that a crashed earlier
// run left behind (the fixture's prefix with a pid that no longer runs) are removed first.
// Not thread-safe: one test thread uses it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace lumen::testing {

class NetnsCluster {
 public:
  struct Host {
    std::string ns;        // network namespace name
    std::string ip;        // its address on the bridge
    std::string temp_dir;  // its --temp-dir (the host's /tmp/lumen)
  };

  // Why namespace hosts cannot be made here (not root, no `ip netns`), or "" if they can.
  static std::string Unavailable();

  // Makes `num_hosts` hosts; throws std::runtime_error (with the failed command) if it cannot.
  explicit NetnsCluster(int num_hosts);
  ~NetnsCluster();
  NetnsCluster(const NetnsCluster&) = delete;
  NetnsCluster& operator=(const NetnsCluster&) = delete;

  const Host& host(int i) const { return hosts_.at(static_cast<size_t>(i)); }
  int size() const { return static_cast<int>(hosts_.size()); }
  // The head's address: host 0's ip and port 6379.
  std::string HeadAddress() const { return hosts_[0].ip + ":6379"; }
  // The cluster token, read from the head host's session (empty before StartHead).
  std::string Token() const;

  // `lumen start --head` on host 0, listening on its ip, without a dashboard.
  CommandResult StartHead(const std::vector<std::string>& flags, double timeout_seconds = 30);
  // `lumen start --address=HEAD --token=TOKEN` on `host`, with its own ip.
  CommandResult StartNode(int host, const std::vector<std::string>& flags,
                          double timeout_seconds = 30);
  // Runs argv inside `host`'s namespace with that host's --temp-dir appended (argv[0] without a
  // slash is a program of the build's bin dir).
  CommandResult Run(int host, std::vector<std::string> argv, double timeout_seconds,
                    const std::vector<std::string>& env = {}) const;
  // Starts argv like Run, to talk to it while it runs.
  std::unique_ptr<Child> Start(int host, std::vector<std::string> argv,
                               const std::vector<std::string>& env = {}) const;
  // Pids of the processes running inside `host`'s namespace.
  std::vector<int> Pids(int host) const;

 private:
  std::vector<std::string> Wrap(int host, std::vector<std::string> argv) const;
  void TearDown();

  std::string prefix_;    // lumt<pid>-<n>: every namespace and the root temp dir carry it
  std::string root_dir_;  // holds every host's temp dir
  std::string bridge_ns_;
  std::vector<Host> hosts_;
};

}  // namespace lumen::testing

// Fails the test with a loud message when namespace hosts cannot be made, unless
// LUMEN_ALLOW_NO_NETNS=1 (then it warns and the test returns early).
#define LUMEN_REQUIRE_NETNS()                                                                      \
  do {                                                                                             \
    const std::string lumen_netns_why = ::lumen::testing::NetnsCluster::Unavailable();             \
    if (!lumen_netns_why.empty()) {                                                                \
      const char* lumen_allow = std::getenv("LUMEN_ALLOW_NO_NETNS");                               \
      if (lumen_allow != nullptr && std::string(lumen_allow) == "1") {                             \
        WARN(                                                                                      \
            "SKIPPED (LUMEN_ALLOW_NO_NETNS=1): namespace hosts unavailable: " << lumen_netns_why); \
        return;                                                                                    \
      }                                                                                            \
      FAIL("multi-node tests need network namespaces (root and `ip netns`): "                      \
           << lumen_netns_why << ". Run as root, or set LUMEN_ALLOW_NO_NETNS=1 to skip");          \
    }                                                                                              \
  } while (false)
