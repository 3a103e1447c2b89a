// How fast the dashboard's API answers with a full head: 100,000 finished tasks and 10,000 actors
// recorded. Starts a head with `lumen start` in a temporary folder, loads its tables through the
// real RPCs with synthetic records (StateService.ReportTaskEvents for the tasks, as core workers
// send them; HeadService.CreateActor for actors that need a resource no node has, so that they
// are recorded and die at once without starting processes), then times GET requests to the
// tasks and actors endpoints over HTTP and prints p50 and p99.
//
//   lumen_dashboard_bench [--requests=200] [--tasks=100000] [--actors=10000]
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/ids.h"
#include "common/process.h"
#include "common/rpc.h"
#include "common/session.h"
#include "proto/state.grpc.pb.h"

namespace {

namespace proto = lumen::proto;

using Clock = std::chrono::steady_clock;

struct Options {
  int requests = 200;
  int tasks = 100'000;
  int actors = 10'000;
};

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

int RunCommand(const std::string& command) { return std::system(command.c_str()); }

// Reports `count` finished tasks: an owner's SUBMITTED, PUSHED and FINISHED and a worker's
// RUNNING for each, in batches as big as a busy process sends in a second.
bool LoadTasks(proto::StateService::Stub* stub, const std::string& token, int count) {
  const std::vector<std::string> functions = {"Square", "Plus",  "Sort",  "Merge", "Fetch",
                                              "Parse",  "Train", "Score", "Load",  "Save"};
  constexpr int kBatch = 5000;
  uint64_t owner_seq = 0;
  uint64_t worker_seq = 0;
  const int64_t base_us = absl::ToUnixMicros(absl::Now()) - int64_t{count} * 100;
  for (int first = 0; first < count; first += kBatch) {
    proto::ReportTaskEventsRequest owner;
    owner.set_reporter_id("bench-driver");
    owner.set_seq(++owner_seq);
    owner.set_node_id("0123456789abcdef");
    owner.set_pid(4242);
    proto::ReportTaskEventsRequest worker;
    worker.set_reporter_id("bench-worker");
    worker.set_seq(++worker_seq);
    worker.set_node_id("0123456789abcdef");
    worker.set_worker_id(std::string(8, '\x42'));
    worker.set_pid(4343);
    for (int i = first; i < std::min(count, first + kBatch); ++i) {
      std::string id(16, '\0');
      std::memcpy(id.data(), &i, sizeof(i));
      const int64_t t = base_us + int64_t{i} * 100;
      auto add = [&](proto::ReportTaskEventsRequest& report, proto::TaskEvent::State state,
                     int64_t time_us) {
        proto::TaskEvent* event = report.add_events();
        event->set_task_id(id);
        event->set_state(state);
        event->set_time_us(time_us);
        return event;
      };
      add(owner, proto::TaskEvent::SUBMITTED, t)->set_function(functions[i % functions.size()]);
      add(owner, proto::TaskEvent::PUSHED, t + 10);
      add(worker, proto::TaskEvent::RUNNING, t + 20);
      proto::TaskEvent* end =
          add(owner, i % 50 == 0 ? proto::TaskEvent::FAILED : proto::TaskEvent::FINISHED, t + 90);
      if (i % 50 == 0) end->set_error("std::runtime_error: synthetic failure");
    }
    for (auto* report : {&worker, &owner}) {
      grpc::ClientContext context;
      lumen::internal::PrepareContext(&context, token, absl::Seconds(30));
      proto::ReportTaskEventsReply reply;
      const grpc::Status status = stub->ReportTaskEvents(&context, *report, &reply);
      if (!status.ok()) {
        std::cerr << "ReportTaskEvents failed: " << status.error_message() << "\n";
        return false;
      }
    }
  }
  return true;
}

// Creates `count` actors that no node can host: each is recorded, then DEAD (infeasible).
bool LoadActors(proto::HeadService::Stub* stub, const std::string& token, int count) {
  for (int i = 0; i < count; ++i) {
    proto::CreateActorRequest request;
    proto::ActorSpec* spec = request.mutable_spec();
    spec->set_actor_id(lumen::internal::NewObjectId());
    spec->set_factory(absl::StrCat("BenchActor", i % 20, "::Create"));
    (*spec->mutable_resources())["bench-never"] = 1;
    grpc::ClientContext context;
    lumen::internal::PrepareContext(&context, token, absl::Seconds(30));
    proto::CreateActorReply reply;
    const grpc::Status status = stub->CreateActor(&context, request, &reply);
    if (!status.ok()) {
      std::cerr << "CreateActor failed: " << status.error_message() << "\n";
      return false;
    }
  }
  return true;
}

struct Latency {
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  size_t bytes = 0;
};

bool Measure(httplib::Client& client, const std::string& token, const std::string& path,
             int requests, Latency* out) {
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(requests));
  const httplib::Headers headers = {{"Authorization", "Bearer " + token}};
  for (int i = 0; i < requests + 5; ++i) {
    const auto start = Clock::now();
    auto response = client.Get(path.c_str(), headers);
    const double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!response || response->status != 200) {
      std::cerr << "GET " << path << " failed: "
                << (response ? std::to_string(response->status)
                             : httplib::to_string(response.error()))
                << "\n";
      return false;
    }
    out->bytes = response->body.size();
    if (i >= 5) ms.push_back(elapsed);  // the first few warm the connection up
  }
  std::sort(ms.begin(), ms.end());
  out->p50_ms = ms[ms.size() / 2];
  out->p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  out->max_ms = ms.back();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag, int* out) {
      return absl::StartsWith(arg, flag) && absl::SimpleAtoi(arg.substr(strlen(flag)), out);
    };
    if (!value("--requests=", &options.requests) && !value("--tasks=", &options.tasks) &&
        !value("--actors=", &options.actors)) {
      std::cerr << "usage: lumen_dashboard_bench [--requests=N] [--tasks=N] [--actors=N]\n";
      return 2;
    }
  }
  const std::string self = lumen::internal::SelfExecutable();
  const std::string lumen = self.substr(0, self.rfind('/')) + "/lumen";
  char temp_template[] = "/tmp/lumen-dashboard-bench-XXXXXX";
  if (mkdtemp(temp_template) == nullptr) return 1;
  const std::string temp_dir = temp_template;
  const std::string flags = " --temp-dir=" + temp_dir;
  if (RunCommand(lumen + " start --head --port=0 --dashboard-port=0 --num-cpus=2" + flags +
                 " > /dev/null") != 0) {
    std::cerr << "lumen start failed\n";
    return 1;
  }
  int rc = 1;
  {
    const std::string session = temp_dir + "/session_latest";
    const std::string token = ReadLine(session + "/token");
    const std::string url = ReadLine(session + "/dashboard_url");
    std::string head;
    auto recorded = lumen::internal::Session::OpenLatest(temp_dir);
    if (recorded.ok() && recorded->LiveHead().has_value()) head = recorded->LiveHead()->address;
    auto channel = lumen::internal::MakeChannel(head);
    auto state = proto::StateService::NewStub(channel);
    auto head_stub = proto::HeadService::NewStub(channel);
    const auto load_start = Clock::now();
    const bool loaded = !head.empty() && LoadTasks(state.get(), token, options.tasks) &&
                        LoadActors(head_stub.get(), token, options.actors);
    const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
    if (loaded) {
      const std::string host_port = url.substr(std::string("http://").size());
      httplib::Client client(host_port.substr(0, host_port.rfind(':')),
                             std::stoi(host_port.substr(host_port.rfind(':') + 1)));
      client.set_read_timeout(60);
      // Actor records settle as their creation threads finish.
      for (int i = 0; i < 600; ++i) {
        auto response = client.Get("/api/summary/actors", {{"Authorization", "Bearer " + token}});
        if (response &&
            absl::StrContains(response->body, absl::StrCat("\"total\":", options.actors))) {
          break;
        }
        usleep(50 * 1000);
      }
      std::cout << "Loaded " << options.tasks << " finished tasks and " << options.actors
                << " dead actors through the head's RPCs in " << absl::StrFormat("%.1f", load_s)
                << " s; " << options.requests << " requests per endpoint.\n";
      std::cout << absl::StrFormat("%-44s %9s %9s %9s %10s\n", "endpoint", "p50 ms", "p99 ms",
                                   "max ms", "bytes");
      rc = 0;
      for (const std::string path :
           {"/api/tasks", "/api/tasks?limit=100", "/api/tasks?state=FAILED", "/api/actors",
            "/api/actors?limit=100", "/api/actors?state=ALIVE", "/api/summary/tasks",
            "/api/overview"}) {
        Latency latency;
        if (!Measure(client, token, path, options.requests, &latency)) {
          rc = 1;
          break;
        }
        std::cout << absl::StrFormat("%-44s %9.2f %9.2f %9.2f %10d\n", path, latency.p50_ms,
                                     latency.p99_ms, latency.max_ms, latency.bytes);
      }
    }
  }
  RunCommand(lumen + " stop" + flags + " > /dev/null");
  RunCommand("rm -rf " + temp_dir);
  return rc;
}
