#include "scheduler/state_api.h"

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/rpc.h"
#include "scheduler/cluster_usage.h"
#include "scheduler/node_state_name.h"
#include "scheduler/node_state_service.h"
#include "scheduler/placement_group_rows.h"

namespace lumen::scheduler {
namespace {

constexpr size_t kDefaultLimit = 1000;
constexpr size_t kMaxLimit = 100'000;
constexpr int64_t kDefaultLogBytes = int64_t{64} * 1024;
constexpr size_t kMaxSamples = 300;  // 10 minutes at one sample every 2 s
constexpr absl::Duration kNodeRpcTimeout = absl::Seconds(3);

// The fields each list may be filtered on.
const std::map<std::string, std::set<std::string>>& Filters() {
  static const auto* filters = new std::map<std::string, std::set<std::string>>{
      {"nodes", {"node_id", "address", "ip", "state", "is_head"}},
      {"actors",
       {"actor_id", "class_name", "name", "namespace", "state", "node_id", "pid", "worker_id",
        "detached"}},
      {"tasks", {"task_id", "function", "state", "type", "actor_id", "node_id", "worker_id"}},
      {"objects", {"object_id", "node_id", "owner_pid", "owner_kind", "state"}},
      {"jobs", {"job_id", "state"}},
      {"placement-groups", {"placement_group_id", "name", "state", "strategy"}},
  };
  return *filters;
}

bool IsHex(const std::string& text, size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return absl::ascii_isxdigit(c); });
}

bool IsJobId(const std::string& text) {
  return text.size() > 4 && text.size() < 16 && absl::StartsWith(text, "job-") &&
         std::all_of(text.begin() + 4, text.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Splits params into the limit and the row filters; unknown keys are an error.
absl::Status ParseListParams(const std::string& resource, const StateApi::Params& params,
                             size_t* limit, StateApi::Params* filters) {
  const std::set<std::string>& allowed = Filters().at(resource);
  *limit = kDefaultLimit;
  for (const auto& [key, value] : params) {
    if (key == "limit") {
      if (!absl::SimpleAtoi(value, limit) || *limit < 1 || *limit > kMaxLimit) {
        return absl::InvalidArgumentError(
            absl::StrCat("limit must be a number from 1 to ", kMaxLimit));
      }
    } else if (allowed.count(key) > 0) {
      (*filters)[key] = value;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot filter ", resource, " on '", key,
                       "'; filter on one of: ", absl::StrJoin(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

std::string FieldText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

bool RowMatches(const nlohmann::json& row, const StateApi::Params& filters) {
  for (const auto& [key, wanted] : filters) {
    auto it = row.find(key);
    const std::string have = it == row.end() ? "" : FieldText(*it);
    if (key == "state" || key == "type" ? !absl::EqualsIgnoreCase(have, wanted) : have != wanted) {
      return false;
    }
  }
  return true;
}

// {"total", "rows"} of the rows that pass the filters, the first `limit` of them.
nlohmann::json FilterRows(const nlohmann::json& rows, const StateApi::Params& filters,
                          size_t limit) {
  nlohmann::json out = nlohmann::json::array();
  size_t total = 0;
  for (const auto& row : rows) {
    if (!RowMatches(row, filters)) continue;
    ++total;
    if (out.size() < limit) out.push_back(row);
  }
  return {{"total", total}, {"rows", std::move(out)}};
}

std::map<std::string, double> ToMap(const google::protobuf::Map<std::string, double>& map) {
  return {map.begin(), map.end()};
}

const char* ActorStateName(proto::ActorInfo::State state) {
  switch (state) {
    case proto::ActorInfo::PENDING:
      return "PENDING_CREATION";
    case proto::ActorInfo::ALIVE:
      return "ALIVE";
    case proto::ActorInfo::RESTARTING:
      return "RESTARTING";
    case proto::ActorInfo::DEAD:
      return "DEAD";
    default:
      return "UNKNOWN";
  }
}

// "Counter::Create" -> "Counter"; a free factory function keeps its name.
std::string ClassName(const std::string& factory) {
  const size_t colon = factory.rfind("::");
  return colon == std::string::npos ? factory : factory.substr(0, colon);
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

std::string DumpJson(const nlohmann::json& json, int indent) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

StateApi::StateApi(Sources sources, absl::Duration sample_period) : sources_(std::move(sources)) {
  sampler_ = std::thread([this, sample_period] { SampleLoop(sample_period); });
}

StateApi::~StateApi() {
  {
    absl::MutexLock lock(&samples_mu_);
    stopping_ = true;
  }
  sampler_.join();
}

absl::StatusOr<nlohmann::json> StateApi::Get(const std::string& resource, const Params& params) {
  auto no_params = [&]() -> absl::Status {
    if (params.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(resource, " takes no parameters"));
  };
  if (resource == "overview") {
    if (auto status = no_params(); !status.ok()) return status;
    return Overview();
  }
  if (resource == "nodes") return Nodes(params);
  if (resource == "actors") return Actors(params);
  if (resource == "tasks") return Tasks(params);
  if (resource == "objects") return Objects(params);
  if (resource == "jobs") return Jobs(params);
  if (resource == "placement-groups") {
    size_t limit = 0;
    Params filters;
    if (auto status = ParseListParams(resource, params, &limit, &filters); !status.ok()) {
      return status;
    }
    return FilterRows(PlacementGroupRows(sources_.head->placement_groups().List()), filters, limit);
  }
  if (absl::StartsWith(resource, "jobs/")) {
    if (auto status = no_params(); !status.ok()) return status;
    const std::string id = resource.substr(5);
    if (!IsJobId(id)) return absl::InvalidArgumentError("a job id looks like job-12");
    return sources_.jobs->Get(id);
  }
  if (resource == "summary/tasks") {
    if (auto status = no_params(); !status.ok()) return status;
    return sources_.tasks->Summary();
  }
  if (resource == "summary/actors") {
    if (auto status = no_params(); !status.ok()) return status;
    return SummaryActors();
  }
  if (resource == "memory") {
    if (auto status = no_params(); !status.ok()) return status;
    return Memory();
  }
  if (resource == "metrics") {
    if (auto status = no_params(); !status.ok()) return status;
    return Metrics();
  }
  if (resource == "logs") return Logs(params);
  return absl::NotFoundError(absl::StrCat("no such resource '", resource, "'"));
}

// ---- Nodes ------------------------------------------------------------------------------

nlohmann::json StateApi::NodeRows() {
  nlohmann::json rows = nlohmann::json::array();
  for (const proto::NodeInfo& node : sources_.head->Nodes()) {
    nlohmann::json workers = nlohmann::json::array();
    for (const proto::ProcessSummary& process : node.processes()) {
      workers.push_back({{"worker_id", internal::Hex(process.worker_id())},
                         {"pid", process.pid()},
                         {"kind", process.kind()},
                         {"state", process.state()},
                         {"actor_id", internal::Hex(process.actor_id())}});
    }
    nlohmann::json demands = nlohmann::json::array();
    for (const auto& demand : node.demands()) {
      demands.push_back({{"resources", ToMap(demand.resources())},
                         {"count", demand.count()},
                         {"infeasible", demand.infeasible()}});
    }
    // Not current for an unconfirmed node: unknown until it reports.
    nlohmann::json available =
        node.unconfirmed() ? nlohmann::json(nullptr) : nlohmann::json(ToMap(node.available()));
    rows.push_back({{"node_id", node.node_id()},
                    {"address", node.address()},
                    {"ip", node.ip()},
                    {"state", NodeStateName(node)},
                    {"state_reason", node.state_reason()},
                    {"is_head", node.is_head()},
                    {"pid", node.pid()},
                    {"resources_total", ToMap(node.total())},
                    {"resources_available", std::move(available)},
                    {"store_capacity", node.store_capacity()},
                    {"store_used", node.store_used()},
                    {"store_objects", node.store_objects()},
                    {"num_workers", node.num_workers()},
                    {"workers", std::move(workers)},
                    {"demands", std::move(demands)},
                    {"start_ms", node.start_time_ms()},
                    {"last_heartbeat_ms", node.last_heartbeat_ms()}});
  }
  return rows;
}

absl::StatusOr<nlohmann::json> StateApi::Nodes(const Params& params) {
  size_t limit = 0;
  Params filters;
  if (auto status = ParseListParams("nodes", params, &limit, &filters); !status.ok()) {
    return status;
  }
  return FilterRows(NodeRows(), filters, limit);
}

// ---- Actors -----------------------------------------------------------------------------

namespace {

// One field of an actor as its row shows it (for filters, without building the row).
std::string ActorField(const proto::ActorInfo& actor, const std::string& key) {
  if (key == "actor_id") return internal::Hex(actor.actor_id());
  if (key == "class_name") return ClassName(actor.class_name());
  if (key == "name") return actor.name();
  if (key == "namespace") return actor.ns();
  if (key == "state") return ActorStateName(actor.state());
  if (key == "node_id") return actor.node_id();
  if (key == "pid") return std::to_string(actor.pid());
  if (key == "worker_id") return internal::Hex(actor.worker_id());
  if (key == "detached") return actor.detached() ? "true" : "false";
  return "";
}

nlohmann::json ActorRow(const proto::ActorInfo& actor, const std::string& ip, int64_t now) {
  const bool alive = actor.state() == proto::ActorInfo::ALIVE;
  int64_t uptime = 0;
  if (actor.start_time_ms() != 0) {
    uptime = (alive ? now : actor.end_time_ms()) - actor.start_time_ms();
  }
  return {{"actor_id", internal::Hex(actor.actor_id())},
          {"class_name", ClassName(actor.class_name())},
          {"factory", actor.class_name()},
          {"name", actor.name()},
          {"namespace", actor.ns()},
          {"state", ActorStateName(actor.state())},
          {"pid", actor.pid()},
          {"node_id", actor.node_id()},
          {"ip", ip},
          {"address", actor.address()},
          {"worker_id", internal::Hex(actor.worker_id())},
          {"restarts", actor.num_restarts()},
          {"max_restarts", actor.max_restarts()},
          {"detached", actor.detached()},
          {"required_resources", ToMap(actor.resources())},
          {"create_ms", actor.create_time_ms()},
          {"start_ms", actor.start_time_ms()},
          {"end_ms", actor.end_time_ms()},
          {"uptime_s", static_cast<double>(std::max<int64_t>(0, uptime)) / 1000.0},
          {"death_cause", actor.death_cause()}};
}

}  // namespace

absl::StatusOr<nlohmann::json> StateApi::Actors(const Params& params) {
  size_t limit = 0;
  Params filters;
  if (auto status = ParseListParams("actors", params, &limit, &filters); !status.ok()) {
    return status;
  }
  std::map<std::string, std::string> node_ips;
  for (const proto::NodeInfo& node : sources_.head->Nodes()) node_ips[node.node_id()] = node.ip();
  const int64_t now = NowMs();
  std::vector<proto::ActorInfo> actors = sources_.head->actors().List();
  // Newest first.
  std::stable_sort(actors.begin(), actors.end(), [](const auto& a, const auto& b) {
    return a.create_time_ms() > b.create_time_ms();
  });
  // Rows are built only for what is shown: filters read single fields.
  nlohmann::json rows = nlohmann::json::array();
  size_t total = 0;
  for (const proto::ActorInfo& actor : actors) {
    bool match = true;
    for (const auto& [key, wanted] : filters) {
      const std::string have = ActorField(actor, key);
      if (key == "state" ? !absl::EqualsIgnoreCase(have, wanted) : have != wanted) match = false;
    }
    if (!match) continue;
    ++total;
    if (rows.size() < limit) {
      auto ip = node_ips.find(actor.node_id());
      rows.push_back(ActorRow(actor, ip == node_ips.end() ? "" : ip->second, now));
    }
  }
  return nlohmann::json{{"total", total}, {"rows", std::move(rows)}};
}

absl::StatusOr<nlohmann::json> StateApi::SummaryActors() {
  std::map<std::string, std::map<std::string, int64_t>> by_class;
  for (const proto::ActorInfo& actor : sources_.head->actors().List()) {
    ++by_class[ClassName(actor.class_name())][ActorStateName(actor.state())];
  }
  nlohmann::json classes = nlohmann::json::array();
  int64_t total = 0;
  for (const auto& [name, states] : by_class) {
    int64_t n = 0;
    for (const auto& [state, count] : states) n += count;
    total += n;
    classes.push_back({{"class_name", name}, {"state_counts", states}, {"total", n}});
  }
  return nlohmann::json{{"classes", std::move(classes)}, {"total", total}};
}

// ---- Tasks ------------------------------------------------------------------------------

absl::StatusOr<nlohmann::json> StateApi::Tasks(const Params& params) {
  size_t limit = 0;
  Params filters;
  if (auto status = ParseListParams("tasks", params, &limit, &filters); !status.ok()) {
    return status;
  }
  TaskEventStore::Query query;
  query.limit = limit;
  auto take = [&filters](const char* key) {
    auto it = filters.find(key);
    return it == filters.end() ? std::string() : it->second;
  };
  query.task_id = take("task_id");
  query.function = take("function");
  query.state = take("state");
  query.type = take("type");
  query.actor_id = take("actor_id");
  query.node_id = take("node_id");
  query.worker_id = take("worker_id");
  nlohmann::json out = sources_.tasks->List(query);
  // An actor call whose worker was killed before it reported RUNNING ran on its actor's worker.
  std::map<std::string, std::optional<proto::ActorInfo>> actors;
  for (auto& row : out["rows"]) {
    if (row["type"] != "ACTOR_TASK" || !row["node_id"].get<std::string>().empty()) continue;
    const std::string actor_id = row["actor_id"].get<std::string>();
    auto [it, inserted] = actors.try_emplace(actor_id);
    if (inserted) it->second = ActorInfo(actor_id);
    if (!it->second.has_value()) continue;
    row["node_id"] = it->second->node_id();
    row["worker_id"] = internal::Hex(it->second->worker_id());
    row["worker_pid"] = it->second->pid();
  }
  return out;
}

std::optional<proto::ActorInfo> StateApi::ActorInfo(const std::string& actor_id_hex) {
  proto::GetActorInfoRequest request;
  std::string id;
  if (!internal::Unhex(actor_id_hex, &id)) return std::nullopt;
  request.set_actor_id(id);
  proto::ActorInfo info;
  if (!sources_.head->actors().Get(request, &info).ok()) return std::nullopt;
  return info;
}

// ---- Objects and memory -----------------------------------------------------------------

proto::NodeStateService::Stub* StateApi::NodeStub(const std::string& address) {
  absl::MutexLock lock(&stubs_mu_);
  auto& stub = stubs_[address];
  if (stub == nullptr) stub = proto::NodeStateService::NewStub(internal::MakeChannel(address));
  return stub.get();
}

nlohmann::json StateApi::StoreObjectRows(int limit_per_node) {
  nlohmann::json rows = nlohmann::json::array();
  for (const proto::NodeInfo& node : sources_.head->Nodes()) {
    if (!node.alive()) continue;
    proto::ListStoreObjectsRequest request;
    request.set_limit(limit_per_node);
    proto::ListStoreObjectsReply reply;
    grpc::ClientContext context;
    internal::PrepareContext(&context, sources_.token, kNodeRpcTimeout);
    if (!NodeStub(node.address())->ListStoreObjects(&context, request, &reply).ok()) continue;
    for (const proto::StoreObject& object : reply.objects()) {
      const std::string owner = object.owner_pid() != 0
                                    ? absl::StrCat(object.owner_kind(), " pid ", object.owner_pid())
                                    : absl::StrCat("client ", object.owner_client_id(), " (gone)");
      rows.push_back({{"object_id", internal::Hex(object.object_id())},
                      {"size", object.size()},
                      {"node_id", node.node_id()},
                      {"locations", nlohmann::json::array({node.node_id()})},
                      {"state", object.spilled()  ? "SPILLED"
                                : object.sealed() ? "SEALED"
                                                  : "CREATING"},
                      {"owner", owner},
                      {"owner_pid", object.owner_pid()},
                      {"owner_kind", object.owner_kind()},
                      {"owner_worker_id", internal::Hex(object.owner_worker_id())},
                      // The store holds each object for its owner until the owner's last
                      // reference anywhere (borrowers included) is gone.
                      {"reference", "PINNED_BY_OWNER"}});
    }
  }
  return rows;
}

absl::StatusOr<nlohmann::json> StateApi::Objects(const Params& params) {
  size_t limit = 0;
  Params filters;
  if (auto status = ParseListParams("objects", params, &limit, &filters); !status.ok()) {
    return status;
  }
  nlohmann::json out = FilterRows(StoreObjectRows(static_cast<int>(kMaxLimit)), filters, limit);
  out["note"] =
      "objects in the nodes' shared-memory stores; values up to 100 KiB live in their owner's "
      "memory and are counted per process in `lumen memory`";
  return out;
}

absl::StatusOr<nlohmann::json> StateApi::Memory() {
  nlohmann::json nodes = nlohmann::json::array();
  for (const proto::NodeInfo& node : sources_.head->Nodes()) {
    nodes.push_back({{"node_id", node.node_id()},
                     {"address", node.address()},
                     {"state", NodeStateName(node)},
                     {"store_used", node.store_used()},
                     {"store_capacity", node.store_capacity()},
                     {"store_objects", node.store_objects()},
                     {"store_spilled_objects", node.store_spilled_objects()},
                     {"store_spilled_bytes", node.store_spilled_bytes()}});
  }
  const nlohmann::json objects = StoreObjectRows(static_cast<int>(kMaxLimit));
  std::map<std::string, std::pair<int64_t, uint64_t>> by_owner;  // owner -> (objects, bytes)
  for (const auto& object : objects) {
    auto& entry = by_owner[object["owner"].get<std::string>()];
    ++entry.first;
    entry.second += object["size"].get<uint64_t>();
  }
  nlohmann::json owners = nlohmann::json::array();
  for (const auto& [owner, entry] : by_owner) {
    owners.push_back({{"owner", owner}, {"objects", entry.first}, {"bytes", entry.second}});
  }
  nlohmann::json largest = nlohmann::json::array();
  for (size_t i = 0; i < objects.size() && i < 20; ++i) largest.push_back(objects[i]);
  std::sort(largest.begin(), largest.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a["size"].get<uint64_t>() > b["size"].get<uint64_t>();
  });
  return nlohmann::json{{"nodes", std::move(nodes)},
                        {"store_objects_by_owner", std::move(owners)},
                        {"largest_objects", std::move(largest)},
                        {"processes", sources_.tasks->Reporters()}};
}

// ---- Jobs -------------------------------------------------------------------------------

absl::StatusOr<nlohmann::json> StateApi::Jobs(const Params& params) {
  size_t limit = 0;
  Params filters;
  if (auto status = ParseListParams("jobs", params, &limit, &filters); !status.ok()) {
    return status;
  }
  return FilterRows(sources_.jobs->List(), filters, limit);
}

// ---- Overview and metrics ---------------------------------------------------------------

absl::StatusOr<nlohmann::json> StateApi::Overview() {
  const ClusterUsage usage = SumUsage(sources_.head->Nodes());
  nlohmann::json resource_json = nlohmann::json::object();
  for (const auto& [name, amount] : usage.resources) {
    resource_json[name] = {{"used", amount.used}, {"total", amount.total}};
  }
  std::map<std::string, int64_t> actor_states;
  for (const proto::ActorInfo& actor : sources_.head->actors().List()) {
    ++actor_states[ActorStateName(actor.state())];
  }
  std::map<std::string, int64_t> task_states;
  const nlohmann::json summary = sources_.tasks->Summary();
  for (const auto& function : summary["functions"]) {
    for (const auto& [state, n] : function["state_counts"].items()) {
      task_states[state] += n.get<int64_t>();
    }
  }
  nlohmann::json running_jobs = nlohmann::json::array();
  for (const auto& job : sources_.jobs->List()) {
    if (job["state"] == "RUNNING" || job["state"] == "PENDING") running_jobs.push_back(job);
  }
  nlohmann::json node_counts = {
      {"alive", usage.alive}, {"unconfirmed", usage.unconfirmed}, {"dead", usage.dead}};
  return nlohmann::json{{"nodes", std::move(node_counts)},
                        {"resources", std::move(resource_json)},
                        {"object_store",
                         {{"used", usage.store_used},
                          {"capacity", usage.store_capacity},
                          {"objects", usage.store_objects}}},
                        {"actors", actor_states},
                        {"tasks", task_states},
                        {"running_jobs", std::move(running_jobs)},
                        {"time_ms", NowMs()}};
}

nlohmann::json StateApi::Metrics() {
  absl::MutexLock lock(&samples_mu_);
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& sample : samples_) samples.push_back(sample);
  return {{"samples", std::move(samples)}};
}

void StateApi::SampleLoop(absl::Duration period) {
  int64_t last_ended = -1;
  absl::Time last_time;
  while (true) {
    {
      absl::MutexLock lock(&samples_mu_);
      if (samples_mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
    const absl::Time now = absl::Now();
    sources_.tasks->Sweep(now);
    ClusterUsage usage = SumUsage(sources_.head->Nodes());
    const int64_t ended = sources_.tasks->NumEnded();
    double tasks_per_second = 0;
    if (last_ended >= 0) {
      tasks_per_second = static_cast<double>(ended - last_ended) /
                         std::max(1e-3, absl::ToDoubleSeconds(now - last_time));
    }
    last_ended = ended;
    last_time = now;
    absl::MutexLock lock(&samples_mu_);
    samples_.push_back({{"time_ms", absl::ToUnixMillis(now)},
                        {"cpu_used", usage.resources["CPU"].used},
                        {"cpu_total", usage.resources["CPU"].total},
                        {"store_used", usage.store_used},
                        {"store_capacity", usage.store_capacity},
                        {"tasks_per_second", tasks_per_second}});
    if (samples_.size() > kMaxSamples) samples_.pop_front();
  }
}

// ---- Logs -------------------------------------------------------------------------------

absl::StatusOr<proto::LogChunk> StateApi::ReadNodeLog(const std::string& node_id,
                                                      const proto::ReadNodeLogRequest& request) {
  std::string address;
  for (const proto::NodeInfo& node : sources_.head->Nodes()) {
    if (node.node_id() == node_id) address = node.address();
  }
  if (address.empty()) return absl::NotFoundError(absl::StrCat("no node ", node_id));
  proto::LogChunk chunk;
  grpc::ClientContext context;
  internal::PrepareContext(&context, sources_.token, kNodeRpcTimeout);
  const grpc::Status status = NodeStub(address)->ReadNodeLog(&context, request, &chunk);
  if (!status.ok()) {
    return internal::FromGrpc(status, absl::StrCat("reading a log of node ", node_id));
  }
  return chunk;
}

absl::StatusOr<nlohmann::json> StateApi::Logs(const Params& params) {
  static const std::set<std::string> kKnown = {"actor", "task",   "worker",   "node",
                                               "job",   "offset", "max_bytes"};
  for (const auto& [key, value] : params) {
    if (kKnown.count(key) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown parameter '", key, "'; logs take ", absl::StrJoin(kKnown, ", ")));
    }
  }
  auto param = [&params](const char* key) {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  };
  int64_t offset = -1;
  int64_t max_bytes = kDefaultLogBytes;
  if (!param("offset").empty() && !absl::SimpleAtoi(param("offset"), &offset)) {
    return absl::InvalidArgumentError("offset must be a number");
  }
  if (!param("max_bytes").empty() && (!absl::SimpleAtoi(param("max_bytes"), &max_bytes) ||
                                      max_bytes < 1 || max_bytes > kMaxLogChunk)) {
    return absl::InvalidArgumentError(absl::StrCat("max_bytes must be from 1 to ", kMaxLogChunk));
  }
  const std::string actor = param("actor");
  const std::string task = param("task");
  const std::string worker = param("worker");
  std::string node = param("node");
  const std::string job = param("job");
  const int chosen = (actor.empty() ? 0 : 1) + (task.empty() ? 0 : 1) + (worker.empty() ? 0 : 1) +
                     (job.empty() ? 0 : 1);
  if (chosen > 1 || (chosen == 0 && node.empty()) ||
      (!node.empty() && chosen == 1 && worker.empty())) {
    return absl::InvalidArgumentError(
        "name one log: actor=ID, task=ID, worker=ID (optionally with node=ID), node=ID or job=ID");
  }
  if (!node.empty() && !IsHex(node, 16)) {
    return absl::InvalidArgumentError("a node id is 16 hex digits");
  }
  nlohmann::json out;
  absl::StatusOr<proto::LogChunk> chunk;
  if (!job.empty()) {
    if (!IsJobId(job)) return absl::InvalidArgumentError("a job id looks like job-12");
    absl::StatusOr<std::string> path = sources_.jobs->LogPath(job);
    if (!path.ok()) return path.status();
    chunk = ReadLogChunk(*path, offset, max_bytes);
    out["source"] = absl::StrCat("job ", job);
  } else {
    proto::ReadNodeLogRequest request;
    request.set_offset(offset);
    request.set_max_bytes(max_bytes);
    std::string worker_id;  // bytes
    if (!actor.empty()) {
      if (!IsHex(actor, 32)) return absl::InvalidArgumentError("an actor id is 32 hex digits");
      std::optional<proto::ActorInfo> info = ActorInfo(actor);
      if (!info.has_value()) return absl::NotFoundError(absl::StrCat("no actor ", actor));
      if (info->worker_id().empty()) {
        return absl::NotFoundError(absl::StrCat("actor ", actor, " has no worker yet"));
      }
      worker_id = info->worker_id();
      node = info->node_id();
      out["source"] = absl::StrCat("actor ", actor);
    } else if (!task.empty()) {
      if (!IsHex(task, 32)) return absl::InvalidArgumentError("a task id is 32 hex digits");
      absl::StatusOr<TaskEventStore::Location> location = sources_.tasks->Locate(task);
      if (!location.ok()) return location.status();
      worker_id = location->worker_id;
      node = location->node_id;
      if (worker_id.empty()) {
        std::optional<proto::ActorInfo> info = ActorInfo(internal::Hex(location->actor_id));
        if (!info.has_value() || info->worker_id().empty()) {
          return absl::NotFoundError(absl::StrCat("task ", task, " has not started on a worker"));
        }
        worker_id = info->worker_id();
        node = info->node_id();
      }
      out["source"] = absl::StrCat("task ", task);
    } else if (!worker.empty()) {
      if (!IsHex(worker, 16) || !internal::Unhex(worker, &worker_id)) {
        return absl::InvalidArgumentError("a worker id is 16 hex digits");
      }
      out["source"] = absl::StrCat("worker ", worker);
    } else {
      request.set_kind(proto::ReadNodeLogRequest::DAEMON);
      out["source"] = absl::StrCat("node ", node);
    }
    request.set_worker_id(worker_id);
    if (!node.empty()) {
      chunk = ReadNodeLog(node, request);
    } else {
      // A worker id alone: ask every node until one has its log.
      chunk = absl::NotFoundError(absl::StrCat("no node has a log of worker ", worker));
      for (const proto::NodeInfo& info : sources_.head->Nodes()) {
        absl::StatusOr<proto::LogChunk> attempt = ReadNodeLog(info.node_id(), request);
        if (attempt.ok()) {
          chunk = std::move(attempt);
          node = info.node_id();
          break;
        }
      }
    }
    out["node_id"] = node;
    out["worker_id"] = internal::Hex(worker_id);
  }
  if (!chunk.ok()) return chunk.status();
  out["offset"] = chunk->offset();
  out["next_offset"] = chunk->offset() + static_cast<int64_t>(chunk->data().size());
  out["size"] = chunk->size();
  out["data"] = chunk->data();
  return out;
}

}  // namespace lumen::scheduler
