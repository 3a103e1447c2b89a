// lumen::Init / Shutdown and the type-erased entry points behind the public templates.
#include "lumen/api.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/mutex_mode.h"
#include "common/process.h"
#include "common/rpc.h"
#include "common/session.h"
#include "common/session_lookup.h"
#include "lumen/errors.h"
#include "proto/control.grpc.pb.h"
#include "runtime/core_worker.h"
#include "scheduler/daemon.h"

namespace lumen {

TaskError::TaskError(std::string remote_type, std::string remote_message, std::string function,
                     std::string node)
    : Error(absl::StrCat("task ", function, " failed on node ", node, ": ", remote_type, ": ",
                         remote_message)),
      remote_type_(std::move(remote_type)),
      remote_message_(std::move(remote_message)),
      function_(std::move(function)),
      node_(std::move(node)) {}

namespace {

std::mutex g_init_mu;
// The embedded cluster this program started, if any.
int g_embedded_pid = 0;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::set<std::string> LocalAddresses() {
  std::set<std::string> out = {"127.0.0.1", "localhost"};
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    char ip[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(it->ifa_addr)->sin_addr, ip, sizeof(ip));
    out.insert(ip);
  }
  freeifaddrs(list);
  return out;
}

// Asks the head for the node manager running on this machine.
std::string FindLocalNode(const std::string& head_address, const std::string& token) {
  auto status = internal::FetchClusterStatus(head_address, token, absl::Seconds(10));
  if (!status.ok()) throw Error(absl::StrCat("lumen::Init: ", status.status().message()));
  const std::set<std::string> local = LocalAddresses();
  // The head's own node when it runs here (several nodes may share this machine), else any
  // local one.
  for (const auto& node : status->nodes()) {
    if (node.alive() && node.address() == head_address && local.count(node.ip()) > 0) {
      return node.address();
    }
  }
  for (const auto& node : status->nodes()) {
    if (node.alive() && local.count(node.ip()) > 0) return node.address();
  }
  throw Error(absl::StrCat("lumen::Init: the cluster at ", head_address,
                           " has no live node on this machine; start one with "
                           "`lumen start --address=",
                           head_address, "`"));
}

// Ends this process when its parent (the node manager, or the driver of an embedded cluster)
// goes away.
void ExitWithParent(void (*on_orphaned)()) {
  const pid_t parent = getppid();
  std::thread([parent, on_orphaned] {
    while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    on_orphaned();
  }).detach();
}

[[noreturn]] void RunWorkerProcess() {
  ExitWithParent([] { std::_Exit(0); });
  internal::CoreWorkerConfig config;
  config.is_worker = true;
  config.node_address = EnvOr("LUMEN_NODE_ADDRESS", "");
  config.token = EnvOr("LUMEN_TOKEN", "");
  config.worker_id = EnvOr("LUMEN_WORKER_ID", "");
  auto worker = internal::CoreWorker::Start(config);
  if (!worker.ok()) {
    LUMEN_LOG(ERROR) << "worker could not start: " << worker.status();
    std::_Exit(1);
  }
  internal::CoreWorker* raw = worker->get();
  internal::SetCurrentCoreWorker(std::move(*worker));
  raw->MarkReady();
  if (raw->hosts_actor() && !raw->CreateActorInstance()) std::_Exit(1);
  raw->ServeForever();
}

// Starts a head for this program's lifetime; returns its address.
std::string StartEmbeddedCluster(const InitOptions& options, const std::string& temp_dir,
                                 std::string* token) {
  auto session = internal::Session::Create(temp_dir);
  if (!session.ok()) {
    throw Error(absl::StrCat("lumen::Init: cannot create a session folder in ", temp_dir, ": ",
                             session.status().message()));
  }
  scheduler::DaemonConfig daemon;
  daemon.head = true;
  daemon.port = 0;
  daemon.session_dir = session->dir();
  daemon.num_cpus = options.num_cpus;
  daemon.object_store_memory = options.object_store_memory;
  daemon.resources = options.resources;
  daemon.embedded = true;
  daemon.dashboard_port = 0;  // any free port: embedded clusters must not clash
  internal::SpawnOptions spawn;
  spawn.argv = {internal::SelfExecutable()};
  spawn.env = {{"LUMEN_ROLE", "daemon"}, {"LUMEN_DAEMON_CONFIG", scheduler::ToJson(daemon)}};
  spawn.log_path = session->LogPath("head.log");
  spawn.detach = false;
  spawn.death_signal = 0;  // the daemon watches its parent and shuts down cleanly
  auto address = internal::StartDaemon(spawn, absl::Seconds(60), &g_embedded_pid);
  if (!address.ok()) {
    throw Error(absl::StrCat("lumen::Init: the embedded cluster did not start: ",
                             address.status().message(), " (log: ", spawn.log_path, ")"));
  }
  auto session_token = session->Token();
  if (session_token.ok()) *token = *session_token;
  return *address;
}

void StopEmbeddedCluster() {
  if (g_embedded_pid <= 0) return;
  kill(g_embedded_pid, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    int status = 0;
    if (waitpid(g_embedded_pid, &status, WNOHANG) != 0) {
      g_embedded_pid = 0;
      return;
    }
    usleep(25 * 1000);
  }
  kill(g_embedded_pid, SIGKILL);
  waitpid(g_embedded_pid, nullptr, 0);
  g_embedded_pid = 0;
}

}  // namespace

void Init(int argc, char** argv) {
  InitOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto take = [&](const std::string& flag, std::string* out) {
      if (absl::StartsWith(arg, flag + "=")) *out = arg.substr(flag.size() + 1);
    };
    take("--address", &options.address);
    take("--token", &options.token);
    take("--temp-dir", &options.temp_dir);
  }
  Init(options);
}

void Init(const InitOptions& options) {
  internal::DisableMutexDeadlockDetection();
  scheduler::MaybeRunDaemonFromEnvironment();
  if (EnvOr("LUMEN_ROLE", "") == "worker") RunWorkerProcess();

  std::lock_guard<std::mutex> lock(g_init_mu);
  if (internal::CurrentCoreWorker() != nullptr) return;
  const std::string temp_dir =
      options.temp_dir.empty() ? internal::DefaultTempDir() : options.temp_dir;
  std::string address = options.address.empty() ? EnvOr("LUMEN_ADDRESS", "") : options.address;
  std::string token = options.token.empty() ? EnvOr("LUMEN_TOKEN", "") : options.token;
  if (address.empty()) {
    auto session = internal::Session::OpenLatest(temp_dir);
    std::optional<internal::ProcessRecord> head;
    if (session.ok()) head = session->LiveHead();
    if (head.has_value()) {
      address = head->address;
      if (token.empty()) {
        auto session_token = session->Token();
        if (session_token.ok()) token = *session_token;
      }
    } else {
      address = StartEmbeddedCluster(options, temp_dir, &token);
    }
  } else if (token.empty()) {
    // A cluster this machine runs or joined: that session folder has the token (else the
    // newest session's).
    auto session = internal::FindLiveSessionFor(temp_dir, address);
    if (!session.ok()) session = internal::Session::OpenLatest(temp_dir);
    if (session.ok()) {
      auto session_token = session->Token();
      if (session_token.ok()) token = *session_token;
    }
  }
  internal::CoreWorkerConfig config;
  config.node_address = FindLocalNode(address, token);
  config.token = token;
  config.executable = internal::SelfExecutable();
  auto worker = internal::CoreWorker::Start(config);
  if (!worker.ok()) {
    StopEmbeddedCluster();
    throw Error(absl::StrCat("lumen::Init: ", worker.status().message()));
  }
  internal::CoreWorker* raw = worker->get();
  internal::SetCurrentCoreWorker(std::move(*worker));
  raw->MarkReady();
}

void Shutdown() {
  std::lock_guard<std::mutex> lock(g_init_mu);
  std::unique_ptr<internal::CoreWorker> worker = internal::TakeCurrentCoreWorker();
  if (worker != nullptr) worker->Shutdown();
  worker.reset();
  StopEmbeddedCluster();
}

bool IsInitialized() { return internal::CurrentCoreWorker() != nullptr; }

RuntimeContext GetRuntimeContext() {
  internal::CoreWorker* worker = internal::CurrentCoreWorker();
  if (worker == nullptr) throw Error("Lumen is not initialized: call lumen::Init() first");
  return RuntimeContext{worker->node_id(), worker->session_dir()};
}

namespace internal {
namespace {

CoreWorker& Runtime() {
  CoreWorker* worker = CurrentCoreWorker();
  if (worker == nullptr) throw Error("Lumen is not initialized: call lumen::Init() first");
  return *worker;
}

}  // namespace

RefParts SubmitTask(const std::string& function, std::vector<TaskArgument> args,
                    const TaskOptions& options) {
  return Runtime().SubmitTask(function, std::move(args), options);
}

RefParts PutObject(const ValueWriter& writer) { return Runtime().Put(writer); }

std::vector<std::shared_ptr<Buffer>> GetObjects(const std::vector<const RefParts*>& refs,
                                                int64_t timeout_ms) {
  return Runtime().Get(refs, timeout_ms);
}

std::vector<bool> WaitObjects(const std::vector<const RefParts*>& refs, int num_returns,
                              int64_t timeout_ms, bool /*fetch_local*/) {
  return Runtime().Wait(refs, num_returns, timeout_ms);
}

std::string CreateActor(const std::string& factory, std::vector<TaskArgument> args,
                        const ActorOptions& options) {
  return Runtime().CreateActor(factory, std::move(args), options);
}

RefParts SubmitActorTask(const std::string& actor_id, const std::string& method,
                         std::vector<TaskArgument> args) {
  return Runtime().SubmitActorTask(actor_id, method, std::move(args));
}

std::string FindNamedActor(const std::string& name, const std::string& ns) {
  return Runtime().FindNamedActor(name, ns);
}

void KillActor(const std::string& actor_id, bool no_restart) {
  Runtime().KillActor(actor_id, no_restart);
}

std::map<std::string, double> ClusterResources() { return Runtime().ClusterResources(); }

int ActorRestarts(const std::string& actor_id) { return Runtime().ActorRestarts(actor_id); }

bool WasCurrentActorRestarted() { return EnvOr("LUMEN_ACTOR_RESTARTED", "0") == "1"; }

void AddLocalReference(const std::string& object_id, const std::string& owner_address) {
  if (CoreWorker* worker = CurrentCoreWorker())
    worker->objects().AddLocalRef(object_id, owner_address);
}

void RemoveLocalReference(const std::string& object_id) {
  if (CoreWorker* worker = CurrentCoreWorker()) worker->objects().RemoveLocalRef(object_id);
}

namespace {
thread_local RefCapture* current_capture = nullptr;
}  // namespace

RefCapture::RefCapture() : outer_(current_capture) { current_capture = this; }
RefCapture::~RefCapture() { current_capture = outer_; }
RefCapture* RefCapture::Current() { return current_capture; }
void RefCapture::Add(const std::string& object_id, const std::string& owner_address) {
  refs_.push_back(RefParts{object_id, owner_address});
}
std::vector<RefParts> RefCapture::Take() {
  if (refs_.empty()) return {};
  std::vector<RefParts> distinct;
  absl::flat_hash_set<std::string> seen;
  for (RefParts& ref : refs_) {
    if (seen.insert(ref.object_id).second) distinct.push_back(std::move(ref));
  }
  refs_.clear();
  return distinct;
}

void OnReferenceSerialized(const std::string& object_id, const std::string& owner_address) {
  if (RefCapture* capture = RefCapture::Current()) capture->Add(object_id, owner_address);
  CoreWorker* worker = CurrentCoreWorker();
  if (worker != nullptr && owner_address == worker->address()) {
    worker->objects().MarkEscaped(object_id);
  }
}

bool RuntimeActive() { return CurrentCoreWorker() != nullptr; }

}  // namespace internal
}  // namespace lumen
