// The dashboard: an HTTP server, run by the head, that serves the pages of dashboard/static
// (embedded in the binary at build time) and the state API as JSON under /api/.
//
//   auto server = DashboardServer::Start({.host = "127.0.0.1", .port = 8265, .token = token},
//                                        backend);
//   std::cout << (*server)->url();   // http://127.0.0.1:8265
//
// Security (Ray's ShadowRay and path-traversal CVEs are the cautionary tale):
//   - Every page and API call needs the cluster token, as `Authorization: Bearer <token>` or
//     through the session cookie that POST /login sets after checking the token (HttpOnly,
//     SameSite=Strict). Otherwise: 401. Only /login and the two files it uses
//     (/static/login.js, /static/style.css) are served without it.
//   - Tokens and session ids are compared in constant time.
//   - A POST (log in, log out, stop a job) must carry the header `X-Lumen-Request: 1`, which a
//     cross-site form cannot send, and, if the browser sends an Origin, the dashboard's own.
//   - Nothing runs code or reads a path from the request: static files are looked up by exact
//     name, logs by validated id through the state API.
//   - Bodies are limited to 16 KiB; request lines and headers to cpp-httplib's 8 KiB.
//
// Thread-safe: cpp-httplib serves requests on its own thread pool; the destructor stops it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace lumen::dashboard {

// What the dashboard shows and changes; the head wires these to its StateApi and JobManager.
struct Backend {
  // GET /api/<resource>?<params>: see scheduler/state_api.h.
  std::function<absl::StatusOr<nlohmann::json>(const std::string& resource,
                                               const std::map<std::string, std::string>& params)>
      get_state;
  // POST /api/jobs/<id>/stop.
  std::function<absl::Status(const std::string& job_id)> stop_job;
};

class DashboardServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8265;  // 0: any free port
    std::string token{};
  };

  // Binds host:port (UNAVAILABLE, naming the flag to change, if it is taken) and serves on a
  // thread of its own.
  static absl::StatusOr<std::unique_ptr<DashboardServer>> Start(const Options& options,
                                                                Backend backend);
  ~DashboardServer();
  DashboardServer(const DashboardServer&) = delete;
  DashboardServer& operator=(const DashboardServer&) = delete;

  int port() const { return port_; }
  // http://host:port
  std::string url() const;

 private:
  DashboardServer(Options options, Backend backend);
  void Route();
  // True if the request carries the token or a live session.
  bool Authenticated(const httplib::Request& request);
  // The CSRF rule for POSTs; fills a 403 response and returns false if it fails.
  bool SameOriginPost(const httplib::Request& request, httplib::Response& response);
  void HandleLogin(const httplib::Request& request, httplib::Response& response);
  void HandleLogout(const httplib::Request& request, httplib::Response& response);
  void HandleApi(const httplib::Request& request, httplib::Response& response);
  void HandleStopJob(const httplib::Request& request, httplib::Response& response);
  static void ServeStatic(const std::string& name, httplib::Response& response);
  static void SendError(httplib::Response& response, int status, const std::string& message);

  // Set at construction.
  const Options options_;
  const Backend backend_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;

  struct Session {
    std::string id;  // 64 hex digits
    absl::Time expires;
  };
  absl::Mutex mu_;
  std::vector<Session> sessions_ ABSL_GUARDED_BY(mu_);
};

// Equal contents, in time that depends only on the lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace lumen::dashboard
