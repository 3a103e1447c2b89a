#include "dashboard/dashboard_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "common/logging.h"
#include "dashboard/static_files.h"

namespace lumen::dashboard {
namespace {

constexpr char kCookie[] = "lumen_session";
constexpr char kCsrfHeader[] = "X-Lumen-Request";
constexpr size_t kMaxBody = size_t{16} * 1024;
constexpr size_t kMaxSessions = 64;
constexpr absl::Duration kSessionLifetime = absl::Hours(12);

int HttpStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

std::string Json(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(const std::string& header, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

// The page a browser gets without the token: a link to the login page and nothing else.
constexpr char kUnauthorizedPage[] =
    "<!doctype html><meta charset=utf-8><title>Lumen: log in</title>"
    "<meta http-equiv=refresh content=\"0; url=/login\">"
    "<p>This dashboard needs the cluster token: <a href=\"/login\">log in</a>.";

}  // namespace

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

DashboardServer::DashboardServer(Options options, Backend backend)
    : options_(std::move(options)),
      backend_(std::move(backend)),
      server_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<DashboardServer>> DashboardServer::Start(const Options& options,
                                                                        Backend backend) {
  if (options.token.empty()) {
    return absl::InvalidArgumentError("the dashboard needs the cluster token");
  }
  std::unique_ptr<DashboardServer> server(new DashboardServer(options, std::move(backend)));
  httplib::Server& http = *server->server_;
  http.set_payload_max_length(kMaxBody);
  http.set_read_timeout(5);
  http.set_write_timeout(10);
  http.set_keep_alive_timeout(2);
  http.new_task_queue = [] { return new httplib::ThreadPool(8); };
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, which would let a second
  // dashboard share the port silently.
  http.set_socket_options([](int socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.set_default_headers({
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-store"},
  });
  server->Route();
  if (options.port == 0) {
    server->port_ = http.bind_to_any_port(options.host);
  } else if (http.bind_to_port(options.host, options.port)) {
    server->port_ = options.port;
  }
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("the dashboard cannot listen on ", options.host, ":", options.port,
                     " (in use?); pick another port with --dashboard-port, 0 for any free one, "
                     "or -1 for no dashboard"));
  }
  server->thread_ = std::thread([raw = server.get()] { raw->server_->listen_after_bind(); });
  // stop() only ends a server that already runs: wait for it, so the destructor always can.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http.is_running()) {
    if (absl::Now() > deadline) return absl::InternalError("the dashboard did not start serving");
    absl::SleepFor(absl::Milliseconds(1));
  }
  return server;
}

DashboardServer::~DashboardServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string DashboardServer::url() const {
  return absl::StrCat("http://", options_.host, ":", port_);
}

void DashboardServer::SendError(httplib::Response& response, int status,
                                const std::string& message) {
  response.status = status;
  response.set_content(Json({{"error", message}}), "application/json");
}

void DashboardServer::ServeStatic(const std::string& name, httplib::Response& response) {
  const StaticFile* file = FindStaticFile(name);
  if (file == nullptr) {
    SendError(response, 404, "no such page");
    return;
  }
  response.set_content(std::string(file->data), std::string(file->content_type).c_str());
}

bool DashboardServer::Authenticated(const httplib::Request& request) {
  const std::string authorization = request.get_header_value("Authorization");
  if (absl::StartsWith(authorization, "Bearer ")) {
    return ConstantTimeEquals(authorization.substr(7), options_.token);
  }
  const std::string session = CookieValue(request.get_header_value("Cookie"), kCookie);
  if (session.empty()) return false;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  bool found = false;
  for (const Session& live : sessions_) {
    // Every live session is compared, so the time does not tell which one matched.
    if (live.expires > now && ConstantTimeEquals(live.id, session)) found = true;
  }
  return found;
}

bool DashboardServer::SameOriginPost(const httplib::Request& request, httplib::Response& response) {
  if (request.get_header_value(kCsrfHeader) != "1") {
    SendError(response, 403,
              absl::StrCat("a POST must carry the header ", kCsrfHeader,
                           ": 1 (the dashboard's pages send it)"));
    return false;
  }
  const std::string origin = request.get_header_value("Origin");
  if (!origin.empty() && origin != absl::StrCat("http://", request.get_header_value("Host"))) {
    SendError(response, 403, "cross-origin requests are refused");
    return false;
  }
  return true;
}

void DashboardServer::Route() {
  httplib::Server& http = *server_;
  // Authentication before any route: only the login page and its two files go without it.
  http.set_pre_routing_handler([this](const httplib::Request& request,
                                      httplib::Response& response) {
    const bool open = request.path == "/login" || request.path == "/static/login.js" ||
                      request.path == "/static/style.css";
    if (open || Authenticated(request)) return httplib::Server::HandlerResponse::Unhandled;
    response.status = 401;
    response.set_header("WWW-Authenticate", "Bearer realm=\"lumen\"");
    if (absl::StartsWith(request.path, "/api/")) {
      response.set_content(Json({{"error",
                                  "this needs the cluster token: log in at /login or send "
                                  "`Authorization: Bearer <token>` (see `lumen get-auth-token`)"}}),
                           "application/json");
    } else {
      response.set_content(kUnauthorizedPage, "text/html; charset=utf-8");
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, const std::exception_ptr& error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LUMEN_LOG(WARNING) << "dashboard request failed: " << what;
        SendError(response, 500, "internal error");
      });
  http.set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.body.empty()) {
      response.set_content(Json({{"error", absl::StrCat("HTTP ", response.status)}}),
                           "application/json");
    }
  });

  http.Get("/login", [](const httplib::Request&, httplib::Response& response) {
    ServeStatic("login.html", response);
  });
  http.Post("/login", [this](const httplib::Request& request, httplib::Response& response) {
    HandleLogin(request, response);
  });
  http.Post("/logout", [this](const httplib::Request& request, httplib::Response& response) {
    HandleLogout(request, response);
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& response) {
    ServeStatic("index.html", response);
  });
  http.Get(R"(/static/([A-Za-z0-9_.-]+))",
           [](const httplib::Request& request, httplib::Response& response) {
             ServeStatic(request.matches[1], response);
           });
  http.Post(R"(/api/jobs/([^/]+)/stop)",
            [this](const httplib::Request& request, httplib::Response& response) {
              HandleStopJob(request, response);
            });
  http.Get(R"(/api/(.+))", [this](const httplib::Request& request, httplib::Response& response) {
    HandleApi(request, response);
  });
}

void DashboardServer::HandleLogin(const httplib::Request& request, httplib::Response& response) {
  if (!SameOriginPost(request, response)) return;
  std::string token = request.get_param_value("token");
  if (token.empty()) {
    const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_object() && body.contains("token") && body["token"].is_string()) {
      token = body["token"].get<std::string>();
    }
  }
  if (!ConstantTimeEquals(token, options_.token)) {
    SendError(response, 401, "wrong token; `lumen get-auth-token` on the head prints it");
    return;
  }
  Session session{internal::Hex(internal::RandomBytes(32)), absl::Now() + kSessionLifetime};
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                   [now](const Session& s) { return s.expires <= now; }),
                    sessions_.end());
    if (sessions_.size() >= kMaxSessions) sessions_.erase(sessions_.begin());
    sessions_.push_back(session);
  }
  response.set_header("Set-Cookie", absl::StrCat(kCookie, "=", session.id,
                                                 "; HttpOnly; SameSite=Strict; Path=/; Max-Age=",
                                                 absl::ToInt64Seconds(kSessionLifetime)));
  response.set_content(Json({{"ok", true}}), "application/json");
}

void DashboardServer::HandleLogout(const httplib::Request& request, httplib::Response& response) {
  if (!SameOriginPost(request, response)) return;
  const std::string session = CookieValue(request.get_header_value("Cookie"), kCookie);
  {
    absl::MutexLock lock(&mu_);
    sessions_.erase(
        std::remove_if(sessions_.begin(), sessions_.end(),
                       [&](const Session& s) { return ConstantTimeEquals(s.id, session); }),
        sessions_.end());
  }
  response.set_header("Set-Cookie",
                      absl::StrCat(kCookie, "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"));
  response.set_content(Json({{"ok", true}}), "application/json");
}

void DashboardServer::HandleApi(const httplib::Request& request, httplib::Response& response) {
  std::map<std::string, std::string> params;
  for (const auto& [key, value] : request.params) {
    if (params.count(key) > 0) {
      SendError(response, 400, absl::StrCat("parameter '", key, "' is given twice"));
      return;
    }
    params[key] = value;
  }
  absl::StatusOr<nlohmann::json> json = backend_.get_state(request.matches[1], params);
  if (!json.ok()) {
    SendError(response, HttpStatus(json.status()), std::string(json.status().message()));
    return;
  }
  response.set_content(Json(*json), "application/json");
}

void DashboardServer::HandleStopJob(const httplib::Request& request, httplib::Response& response) {
  if (!SameOriginPost(request, response)) return;
  const absl::Status status = backend_.stop_job(request.matches[1]);
  if (!status.ok()) {
    SendError(response, HttpStatus(status), std::string(status.message()));
    return;
  }
  response.set_content(Json({{"ok", true}}), "application/json");
}

}  // namespace lumen::dashboard
