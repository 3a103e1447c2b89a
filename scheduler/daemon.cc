#include "scheduler/daemon.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/rpc.h"
#include "common/session.h"
#include "dashboard/dashboard_server.h"
#include "net/listener.h"
#include "objectstore/object_store.h"
#include "objectstore/shm_region.h"
#include "scheduler/advertised_ip.h"
#include "scheduler/code_service.h"
#include "scheduler/head_service.h"
#include "scheduler/head_store.h"
#include "scheduler/job_manager.h"
#include "scheduler/node_manager.h"
#include "scheduler/node_state_service.h"
#include "scheduler/state_api.h"
#include "scheduler/state_service.h"
#include "scheduler/task_event_store.h"

namespace lumen::scheduler {
namespace {

constexpr char kStorePrefix[] = "lumen-";

// Whether the process that made the store named "lumen-<pid>-<id>" is gone (from this PID
// namespace); false for a name of another shape.
bool StoreCreatorGone(const std::string& name) {
  const size_t dash = name.find('-', sizeof(kStorePrefix) - 1);
  int pid = 0;
  if (dash == std::string::npos ||
      !absl::SimpleAtoi(name.substr(sizeof(kStorePrefix) - 1, dash - sizeof(kStorePrefix) + 1),
                        &pid) ||
      pid <= 0) {
    return false;
  }
  return kill(pid, 0) != 0 && errno == ESRCH;
}

int64_t DefaultStoreBytes() {
  const int64_t pages = sysconf(_SC_PHYS_PAGES);
  const int64_t page_size = sysconf(_SC_PAGE_SIZE);
  const int64_t thirty_percent = pages * page_size / 10 * 3;
  return std::min<int64_t>(thirty_percent, int64_t{2} << 30);
}

// A clear message when the port is taken (gRPC alone only says that it could not bind).
absl::Status CheckPortFree(const std::string& ip, int port) {
  if (port == 0) return absl::OkStatus();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IPv4 address"));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int error = errno;
  close(fd);
  if (rc == 0) return absl::OkStatus();
  if (error == EADDRINUSE) {
    return absl::UnavailableError(
        absl::StrCat("port ", port, " on ", ip, " is already in use; pick another with --port"));
  }
  return absl::UnavailableError(
      absl::StrCat("cannot bind ", ip, ":", port, ": ", std::strerror(error)));
}

// What the head runs to be observed: the task record, jobs, the state API over gRPC and the
// dashboard. Members in construction order; each uses those before it, so they go in reverse.
struct HeadState {
  std::unique_ptr<TaskEventStore> tasks;
  std::unique_ptr<JobManager> jobs;
  std::unique_ptr<StateApi> api;
  std::unique_ptr<StateService> service;
  std::unique_ptr<dashboard::DashboardServer> dashboard;

  void Reset() {
    dashboard.reset();
    service.reset();
    api.reset();
    jobs.reset();
    tasks.reset();
  }
};

absl::StatusOr<HeadState> StartHeadState(const DaemonConfig& config, const std::string& token,
                                         const std::string& head_address, HeadService* head) {
  HeadState state;
  state.tasks = std::make_unique<TaskEventStore>();
  state.jobs = std::make_unique<JobManager>(JobManager::Options{
      .head_address = head_address, .token = token, .session_dir = config.session_dir});
  state.api = std::make_unique<StateApi>(StateApi::Sources{
      .head = head, .tasks = state.tasks.get(), .jobs = state.jobs.get(), .token = token});
  state.service =
      std::make_unique<StateService>(token, state.tasks.get(), state.api.get(), state.jobs.get());
  if (config.dashboard_port >= 0) {
    dashboard::Backend backend;
    backend.get_state = [api = state.api.get()](const std::string& resource,
                                                const StateApi::Params& params) {
      return api->Get(resource, params);
    };
    backend.stop_job = [jobs = state.jobs.get()](const std::string& id) { return jobs->Stop(id); };
    auto server = dashboard::DashboardServer::Start(
        {.host = config.dashboard_host, .port = config.dashboard_port, .token = token},
        std::move(backend));
    if (!server.ok()) return server.status();
    state.dashboard = std::move(*server);
  }
  return state;
}

// Writes `line` as the session folder's file `name`.
absl::Status WriteSessionFile(const std::string& session_dir, const char* name,
                              const std::string& line) {
  const std::string path = absl::StrCat(session_dir, "/", name);
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  std::fputs((line + "\n").c_str(), file);
  return std::fclose(file) == 0 ? absl::OkStatus()
                                : absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
}

}  // namespace

std::string ToJson(const DaemonConfig& config) {
  nlohmann::json json;
  json["head"] = config.head;
  json["ip"] = config.ip;
  json["node_ip"] = config.node_ip;
  json["port"] = config.port;
  json["head_address"] = config.head_address;
  json["num_cpus"] = config.num_cpus;
  json["resources"] = config.resources;
  json["object_store_memory"] = config.object_store_memory;
  json["session_dir"] = config.session_dir;
  json["heartbeat_period_ms"] = config.heartbeat_period_ms;
  json["heartbeat_timeout_ms"] = config.heartbeat_timeout_ms;
  json["head_lost_timeout_ms"] = config.head_lost_timeout_ms;
  json["max_workers"] = config.max_workers;
  json["embedded"] = config.embedded;
  json["dashboard_host"] = config.dashboard_host;
  json["dashboard_port"] = config.dashboard_port;
  return json.dump();
}

absl::StatusOr<DaemonConfig> DaemonConfigFromJson(const std::string& text) {
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    DaemonConfig config;
    config.head = json.at("head").get<bool>();
    config.ip = json.at("ip").get<std::string>();
    config.node_ip = json.value("node_ip", config.node_ip);
    config.port = json.at("port").get<int>();
    config.head_address = json.at("head_address").get<std::string>();
    config.num_cpus = json.at("num_cpus").get<int>();
    config.resources = json.at("resources").get<std::map<std::string, double>>();
    config.object_store_memory = json.at("object_store_memory").get<int64_t>();
    config.session_dir = json.at("session_dir").get<std::string>();
    config.heartbeat_period_ms = json.at("heartbeat_period_ms").get<int>();
    config.heartbeat_timeout_ms = json.at("heartbeat_timeout_ms").get<int>();
    config.head_lost_timeout_ms = json.value("head_lost_timeout_ms", config.head_lost_timeout_ms);
    config.max_workers = json.at("max_workers").get<int>();
    config.embedded = json.at("embedded").get<bool>();
    config.dashboard_host = json.value("dashboard_host", config.dashboard_host);
    config.dashboard_port = json.value("dashboard_port", config.dashboard_port);
    return config;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad daemon configuration: ", e.what()));
  }
}

int RunDaemon(const DaemonConfig& config) {
  // SIGTERM and SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::string created_shm;  // unlinked when the start fails after making it
  auto fail = [&created_shm](const std::string& message) {
    if (!created_shm.empty()) (void)objectstore::ShmRegion::Unlink(created_shm);
    LUMEN_LOG(ERROR) << message;
    internal::NotifyFailed(message);
    return 1;
  };
  auto session = internal::Session::Open(config.session_dir);
  if (!session.ok()) return fail(std::string(session.status().message()));
  auto token = session->Token();
  if (!token.ok()) return fail(std::string(token.status().message()));
  if (auto status = CheckPortFree(config.ip, config.port); !status.ok()) {
    return fail(std::string(status.message()));
  }
  auto advertised = AdvertisedIp(config.ip, config.node_ip, config.head ? "" : config.head_address);
  if (!advertised.ok()) return fail(std::string(advertised.status().message()));
  if (!config.head) {
    // A wrong address, an unreachable head or a wrong token ends here, before the store (up to
    // 2 GiB of pre-faulted shared memory) exists.
    auto reached = internal::FetchClusterStatus(config.head_address, *token, absl::Seconds(5));
    if (!reached.ok()) {
      return fail(absl::StrCat("cannot join the cluster: ", reached.status().message()));
    }
  }

  const std::string node_id = internal::Hex(internal::RandomBytes(8));
  // Stores of nodes on this host that died without removing them (SIGKILL, the OOM killer) hold
  // their memory until reboot: they go first.
  const objectstore::ShmRegion::Removed swept =
      objectstore::ShmRegion::RemoveAbandoned(kStorePrefix, StoreCreatorGone);
  if (swept.regions > 0) {
    LUMEN_LOG(INFO) << "removed " << swept.regions << " object store(s) of " << swept.bytes
                    << " bytes in all, left in /dev/shm by nodes that died";
  }
  const std::string shm_name = absl::StrCat(kStorePrefix, getpid(), "-", node_id.substr(0, 8));
  const int64_t store_bytes =
      config.object_store_memory > 0 ? config.object_store_memory : DefaultStoreBytes();
  auto region = objectstore::ShmRegion::Create(shm_name, static_cast<size_t>(store_bytes));
  if (!region.ok()) {
    return fail(absl::StrCat("cannot create the object store (", store_bytes,
                             " bytes of shared memory): ", region.status().message()));
  }
  created_shm = shm_name;
  auto store = std::make_unique<objectstore::ObjectStore>(std::move(*region));

  NodeManagerConfig nm;
  nm.node_id = node_id;
  nm.ip = *advertised;
  nm.token = *token;
  nm.session_dir = config.session_dir;
  nm.executable = internal::SelfExecutable();
  nm.shm_name = shm_name;
  nm.resources = config.resources;
  nm.resources["CPU"] = config.num_cpus >= 0
                            ? config.num_cpus
                            : static_cast<double>(std::thread::hardware_concurrency());
  nm.max_workers = config.max_workers;
  nm.is_head = config.head;
  nm.heartbeat_period = absl::Milliseconds(config.heartbeat_period_ms);
  nm.head_lost_timeout = absl::Milliseconds(config.head_lost_timeout_ms);

  // The head's durable tables outlive its service (declared first, destroyed last).
  std::unique_ptr<HeadStore> head_store;
  std::unique_ptr<HeadService> head;
  if (config.head) {
    auto opened = HeadStore::Open(config.session_dir + "/head.db");
    if (!opened.ok()) return fail(std::string(opened.status().message()));
    head_store = std::move(*opened);
    head = std::make_unique<HeadService>(*token, config.session_dir,
                                         absl::Milliseconds(config.heartbeat_timeout_ms),
                                         head_store.get());
  }
  // The node manager must know its own address before it serves, so a free port is picked
  // up front when none was asked for.
  int port = config.port;
  if (port == 0) {
    auto free_port = net::PickFreePort(config.ip);
    if (!free_port.ok()) return fail(std::string(free_port.status().message()));
    port = *free_port;
  }
  nm.address = absl::StrCat(*advertised, ":", port);
  nm.head_address = config.head ? nm.address : config.head_address;
  auto node_manager = std::make_unique<NodeManager>(nm, std::move(store));
  NodeStateService node_state(*token, config.session_dir, config.head ? "head.log" : "node.log",
                              node_manager.get());
  HeadState observed;
  if (head) {
    auto started = StartHeadState(config, *token, nm.address, head.get());
    if (!started.ok()) return fail(std::string(started.status().message()));
    observed = std::move(*started);
  }
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Room for the largest KV value (64 MiB) with its key.
  builder.SetMaxReceiveMessageSize(65 << 20);
  int selected_port = 0;
  builder.AddListeningPort(absl::StrCat(config.ip, ":", port), grpc::InsecureServerCredentials(),
                           &selected_port);
  if (head) builder.RegisterService(head.get());
  if (observed.service) builder.RegisterService(observed.service.get());
  builder.RegisterService(node_manager.get());
  builder.RegisterService(&node_state);
  CodeService code_service(*token, &node_manager->code());
  builder.RegisterService(&code_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || selected_port == 0) {
    return fail(absl::StrCat("cannot listen on ", nm.address, " (is the port in use?)"));
  }
  if (auto status = node_manager->Start(); !status.ok()) {
    server->Shutdown();
    return fail(std::string(status.message()));
  }

  internal::ProcessRecord record;
  record.role = config.head ? "head" : "node";
  record.pid = getpid();
  record.start_ticks = internal::ProcessStartTicks(getpid());
  record.address = nm.address;
  record.shm_name = shm_name;
  if (auto status = session->AddProcess(record); !status.ok()) {
    LUMEN_LOG(WARNING) << "cannot record this process in the session: " << status;
  }
  if (config.head) {
    if (auto status = WriteSessionFile(config.session_dir, kHeadAddressFile, nm.address);
        !status.ok()) {
      LUMEN_LOG(WARNING) << "cannot record the head's address: " << status;
    }
  }
  LUMEN_LOG(INFO) << (config.head ? "head" : "node") << " " << node_id << " listening on "
                  << nm.address << " with " << nm.resources["CPU"] << " CPUs and a " << store_bytes
                  << "-byte object store";
  if (observed.dashboard) {
    LUMEN_LOG(INFO) << "dashboard at " << observed.dashboard->url();
    if (auto status =
            WriteSessionFile(config.session_dir, kDashboardUrlFile, observed.dashboard->url());
        !status.ok()) {
      LUMEN_LOG(WARNING) << "cannot record the dashboard's URL: " << status;
    }
  }
  internal::NotifyReady(nm.address);
  if (config.embedded) {
    // An embedded cluster lives as long as the program that started it.
    const pid_t parent = getppid();
    std::thread([parent] {
      while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      kill(getpid(), SIGTERM);
    }).detach();
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LUMEN_LOG(INFO) << "received signal " << signal_number << "; shutting down";
  // Shutdown order: the dashboard, jobs, workers, then the gRPC server, the state API, shared
  // memory and the record.
  observed.dashboard.reset();
  if (observed.jobs) observed.jobs->StopAll();
  node_manager->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server.reset();
  observed.Reset();
  node_manager.reset();
  auto unlinked = objectstore::ShmRegion::Unlink(shm_name);
  (void)unlinked;
  auto removed = session->RemoveProcess(getpid());
  (void)removed;
  return 0;
}

void MaybeRunDaemonFromEnvironment() {
  const char* role = std::getenv("LUMEN_ROLE");
  if (role == nullptr || std::string(role) != "daemon") return;
  const char* json = std::getenv("LUMEN_DAEMON_CONFIG");
  auto config = DaemonConfigFromJson(json != nullptr ? json : "");
  if (!config.ok()) {
    internal::NotifyFailed(std::string(config.status().message()));
    std::_Exit(2);
  }
  std::exit(RunDaemon(*config));
}

}  // namespace lumen::scheduler
