// The dashboard's HTTP API on a real cluster: every endpoint with and without the token, and
// path-traversal attempts in every parameter.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/harness.h"

using Catch::Matchers::Contains;
using lumen::testing::Bin;
using lumen::testing::Child;
using lumen::testing::MakeTempDir;
using lumen::testing::Run;
using lumen::testing::TestCluster;

namespace {

// host and port of http://host:port
std::pair<std::string, int> HostPort(const std::string& url) {
  const std::string rest = url.substr(std::string("http://").size());
  const size_t colon = rest.rfind(':');
  return {rest.substr(0, colon), std::stoi(rest.substr(colon + 1))};
}

class Api {
 public:
  explicit Api(const TestCluster& cluster) : token_(cluster.Token()) {
    const auto [host, port] = HostPort(cluster.DashboardUrl());
    client_ = std::make_unique<httplib::Client>(host, port);
    client_->set_url_encode(false);  // the tests write exactly the bytes they mean
    client_->set_read_timeout(30);
  }

  // GET with the given Authorization token ("" for none); status and body.
  std::pair<int, std::string> Get(const std::string& path, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    auto response = client_->Get(path.c_str(), headers);
    if (!response) return {-1, ""};
    return {response->status, response->body};
  }
  std::pair<int, std::string> Get(const std::string& path) { return Get(path, token_); }

  nlohmann::json Json(const std::string& path) {
    auto [status, body] = Get(path);
    INFO(path << " -> " << status << " " << body);
    REQUIRE(status == 200);
    return nlohmann::json::parse(body);
  }

  // Polls `path` until `done` holds, up to `seconds`.
  nlohmann::json WaitFor(const std::string& path,
                         const std::function<bool(const nlohmann::json&)>& done,
                         double seconds = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (true) {
      nlohmann::json json = Json(path);
      if (done(json) || std::chrono::steady_clock::now() > deadline) return json;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  httplib::Client& client() { return *client_; }
  const std::string& token() const { return token_; }

 private:
  std::string token_;
  std::unique_ptr<httplib::Client> client_;
};

bool AnyRow(const nlohmann::json& doc, const std::function<bool(const nlohmann::json&)>& match) {
  for (const auto& row : doc["rows"]) {
    if (match(row)) return true;
  }
  return false;
}

// Traversal attempts as they appear in a URL (the server decodes the %-escapes).
const std::vector<std::string> kAttacks = {
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "worker-0000.log%00",
    "..%00/etc/passwd",
    "....//....//etc/passwd",
};

}  // namespace

TEST_CASE(
    "every dashboard endpoint answers with the token, 401 without it, and never reads a "
    "path from the request",
    "[integration][dashboard]") {
  TestCluster cluster(2);
  REQUIRE(cluster.start_result().exit_code == 0);
  REQUIRE_FALSE(cluster.DashboardUrl().empty());
  Api api(cluster);

  // A workload to look at: tasks, an actor, an object in the store, and a job.
  Child driver({Bin("lumen_state_driver"), MakeTempDir() + "/crashed", cluster.TempDirFlag()});
  REQUIRE(driver.WaitForOutput("DONE", 90));
  REQUIRE(
      Run({"lumen", "job", "submit", cluster.TempDirFlag(), "--", "sh", "-c", "echo job says hi"})
          .exit_code == 0);
  const nlohmann::json tasks = api.WaitFor("/api/tasks", [](const nlohmann::json& doc) {
    return AnyRow(doc, [](const nlohmann::json& r) {
      return r["function"] == "Shout" && r["state"] == "FINISHED" &&
             !r["worker_id"].get<std::string>().empty();
    });
  });
  std::string task_id;
  std::string worker_id;
  for (const auto& row : tasks["rows"]) {
    if (row["function"] == "Shout") {
      task_id = row["task_id"];
      worker_id = row["worker_id"];
    }
  }
  REQUIRE_FALSE(task_id.empty());
  const nlohmann::json actors = api.Json("/api/actors?state=ALIVE");
  REQUIRE(actors["total"] == 1);
  const std::string actor_id = actors["rows"][0]["actor_id"];
  const std::string node_id = actors["rows"][0]["node_id"];

  const std::vector<std::string> endpoints = {
      "/api/overview",
      "/api/nodes",
      "/api/actors",
      "/api/tasks",
      "/api/objects",
      "/api/jobs",
      "/api/placement-groups",
      "/api/summary/tasks",
      "/api/summary/actors",
      "/api/memory",
      "/api/metrics",
      "/api/jobs/job-1",
      "/api/logs?actor=" + actor_id,
      "/api/logs?task=" + task_id,
      "/api/logs?worker=" + worker_id,
      "/api/logs?worker=" + worker_id + "&node=" + node_id,
      "/api/logs?node=" + node_id,
      "/api/logs?job=job-1",
      "/",
      "/static/app.js",
  };
  SECTION("with the token every endpoint answers, and what it shows is right") {
    for (const std::string& path : endpoints) {
      INFO(path);
      CHECK(api.Get(path).first == 200);
    }
    CHECK(api.Json("/api/overview")["nodes"]["alive"] == 1);
    CHECK(api.Json("/api/nodes")["rows"][0]["state"] == "ALIVE");
    CHECK(api.Json("/api/actors?class_name=Counter")["rows"][0]["name"] == "state-counter");
    CHECK(api.Json("/api/tasks?function=Square&state=FINISHED")["total"] == 20);
    CHECK(api.Json("/api/tasks?limit=3")["rows"].size() == 3);
    CHECK(AnyRow(api.Json("/api/objects"), [](const nlohmann::json& o) {
      return o["size"].get<int64_t>() >= (8 << 20) && o["state"] == "SEALED";
    }));
    CHECK(api.Json("/api/jobs/job-1")["state"] == "SUCCEEDED");
    CHECK(api.Json("/api/placement-groups")["total"] == 0);
    CHECK(api.Json("/api/summary/actors")["total"] == 1);
    CHECK(api.Json("/api/memory")["nodes"][0]["store_objects"] == 1);
    CHECK_THAT(api.Json("/api/logs?actor=" + actor_id)["data"].get<std::string>(),
               Contains("counter starting at 10"));
    CHECK_THAT(api.Json("/api/logs?task=" + task_id)["data"].get<std::string>(),
               Contains("shout 5 from a task"));
    CHECK_THAT(api.Json("/api/logs?job=job-1")["data"].get<std::string>(), Contains("job says hi"));
    CHECK_THAT(api.Json("/api/logs?node=" + node_id)["data"].get<std::string>(),
               Contains("dashboard at"));
    const nlohmann::json tail = api.Json("/api/logs?job=job-1&offset=4&max_bytes=3");
    CHECK(tail["data"] == "say");
    CHECK(tail["next_offset"] == 7);
    // Samples for the charts arrive every 2 s.
    const nlohmann::json metrics = api.WaitFor(
        "/api/metrics", [](const nlohmann::json& m) { return m["samples"].size() >= 2; });
    CHECK(metrics["samples"].back()["cpu_total"] == 2);
  }
  SECTION("without the token, or with a wrong one, everything is 401") {
    for (const std::string& path : endpoints) {
      INFO(path);
      CHECK(api.Get(path, "").first == 401);
      CHECK(api.Get(path, std::string(64, 'f')).first == 401);
      CHECK(api.Get(path, api.token() + "x").first == 401);
    }
    auto stop =
        api.client().Post("/api/jobs/job-1/stop", {{"X-Lumen-Request", "1"}}, "", "text/plain");
    REQUIRE(stop);
    CHECK(stop->status == 401);
  }
  SECTION("a browser session: log in, read, stop a job with the CSRF header, log out") {
    REQUIRE(Run({"lumen", "job", "submit", "--no-wait", cluster.TempDirFlag(), "--", "sleep", "60"})
                .exit_code == 0);
    const httplib::Headers csrf = {{"X-Lumen-Request", "1"}};
    auto login = api.client().Post("/login", csrf, nlohmann::json{{"token", api.token()}}.dump(),
                                   "application/json");
    REQUIRE(login);
    REQUIRE(login->status == 200);
    const std::string cookie = login->get_header_value("Set-Cookie");
    CHECK_THAT(cookie, Contains("HttpOnly"));
    CHECK_THAT(cookie, Contains("SameSite=Strict"));
    httplib::Headers session = {{"Cookie", cookie.substr(0, cookie.find(';'))}};
    CHECK(api.client().Get("/api/jobs", session)->status == 200);
    CHECK(api.client().Post("/api/jobs/job-2/stop", session, "", "text/plain")->status == 403);
    httplib::Headers post = session;
    post.emplace("X-Lumen-Request", "1");
    CHECK(api.client().Post("/api/jobs/job-2/stop", post, "", "text/plain")->status == 200);
    api.WaitFor("/api/jobs/job-2",
                [](const nlohmann::json& job) { return job["state"] == "STOPPED"; });
    CHECK(api.Json("/api/jobs/job-2")["state"] == "STOPPED");
    CHECK(api.client().Post("/api/jobs/job-2/stop", post, "", "text/plain")->status == 409);
    CHECK(api.client().Post("/logout", post, "", "text/plain")->status == 200);
    CHECK(api.client().Get("/api/jobs", session)->status == 401);
  }
  SECTION("path traversal in every parameter gets an error or nothing, never a file") {
    const std::vector<std::string> log_params = {"actor", "task", "worker", "node", "job"};
    for (const std::string& attack : kAttacks) {
      for (const std::string& param : log_params) {
        const std::string path = absl::StrCat("/api/logs?", param, "=", attack);
        INFO(path);
        const auto [status, body] = api.Get(path);
        CHECK(status == 400);
        CHECK_THAT(body, !Contains("root:"));
      }
      for (const char* param : {"offset", "max_bytes"}) {
        const std::string path = absl::StrCat("/api/logs?job=job-1&", param, "=", attack);
        INFO(path);
        CHECK(api.Get(path).first == 400);
      }
      const std::string with_node = absl::StrCat("/api/logs?worker=", worker_id, "&node=", attack);
      CHECK(api.Get(with_node).first == 400);
      // Filters compare values; a path matches nothing and opens nothing.
      const std::vector<std::pair<std::string, std::string>> filters = {
          {"nodes", "node_id"},   {"actors", "actor_id"}, {"actors", "name"},
          {"tasks", "task_id"},   {"tasks", "function"},  {"tasks", "worker_id"},
          {"objects", "node_id"}, {"jobs", "job_id"},     {"placement-groups", "name"}};
      for (const auto& [resource, key] : filters) {
        const std::string path = absl::StrCat("/api/", resource, "?", key, "=", attack);
        INFO(path);
        const auto [status, body] = api.Get(path);
        CHECK((status == 200 || status == 400));
        if (status == 200) CHECK(nlohmann::json::parse(body)["total"] == 0);
        CHECK_THAT(body, !Contains("root:"));
      }
      for (const char* prefix : {"/api/", "/api/jobs/", "/static/", "/api/summary/", "/"}) {
        const std::string path = std::string(prefix) + attack;
        INFO(path);
        const auto [status, body] = api.Get(path);
        CHECK((status == 400 || status == 404));
        CHECK_THAT(body, !Contains("root:"));
        CHECK(api.Get(path, "").first == 401);
      }
      auto stop = api.client().Post(
          ("/api/jobs/" + attack + "/stop").c_str(),
          {{"Authorization", "Bearer " + api.token()}, {"X-Lumen-Request", "1"}}, "", "text/plain");
      REQUIRE(stop);
      CHECK((stop->status == 404 || stop->status == 400));
    }
    CHECK(api.Get("/api/tasks?colour=red").first == 400);
    CHECK(api.Get("/api/tasks?limit=0").first == 400);
    CHECK(api.Get("/api/tasks?limit=../1").first == 400);
    CHECK(api.Get("/api/overview?x=1").first == 400);
  }
  driver.WriteLine("");
  CHECK(driver.Wait(60) == 0);
}
