#include "cli/state_commands.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/cluster_commands.h"
#include "common/rpc.h"
#include "proto/state.grpc.pb.h"

namespace lumen::cli {
namespace {

constexpr size_t kMaxCell = 60;

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "lumen " << command << ": " << message << "\n";
  return 1;
}

std::string Text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  if (value.is_number_float()) return absl::StrFormat("%g", value.get<double>());
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Cut(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.size() > kMaxCell) text = text.substr(0, kMaxCell - 3) + "...";
  return text;
}

std::string Resources(const nlohmann::json& map) {
  std::vector<std::string> parts;
  for (const auto& [name, amount] : map.items())
    parts.push_back(absl::StrCat(name, ": ", Text(amount)));
  return parts.empty() ? "" : absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

std::string Seconds(double seconds) {
  if (seconds <= 0) return "";
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  if (seconds < 3600)
    return absl::StrFormat("%dm%02ds", static_cast<int>(seconds) / 60,
                           static_cast<int>(seconds) % 60);
  return absl::StrFormat("%dh%02dm", static_cast<int>(seconds) / 3600,
                         static_cast<int>(seconds) / 60 % 60);
}

std::string Clock(double ms) {
  if (ms <= 0) return "";
  return absl::FormatTime("%H:%M:%S", absl::FromUnixMillis(static_cast<int64_t>(ms)),
                          absl::LocalTimeZone());
}

void PrintHeader(const std::string& title) {
  std::cout << "======== " << title << ": "
            << absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::Now(), absl::LocalTimeZone())
            << " ========\n";
}

// Left-aligned columns with an index column, like `ray list`.
void PrintTable(const std::vector<std::string>& columns,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) widths[i] = columns[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  const size_t index_width = std::to_string(rows.empty() ? 0 : rows.size() - 1).size();
  auto line = [&](const std::string& index, const std::vector<std::string>& cells) {
    std::string out =
        absl::StrCat(std::string(index_width - std::min(index_width, index.size()), ' '), index);
    for (size_t i = 0; i < cells.size(); ++i) {
      absl::StrAppend(&out, "  ", cells[i], std::string(widths[i] - cells[i].size(), ' '));
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << "\n";
  };
  line("", columns);
  for (size_t r = 0; r < rows.size(); ++r) line(std::to_string(r), rows[r]);
}

struct ListColumns {
  std::vector<std::string> names;
  std::function<std::vector<std::string>(const nlohmann::json&)> cells;
};

const std::map<std::string, ListColumns>& Columns() {
  static const auto* columns = new std::map<std::string, ListColumns>{
      {"nodes",
       {{"NODE_ID", "ADDRESS", "STATE", "IS_HEAD", "CPU", "OBJECT_STORE", "WORKERS"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          const double total = r["resources_total"].value("CPU", 0.0);
          // Null for an unconfirmed node: in use unknown until it reports.
          const nlohmann::json& available = r["resources_available"];
          const std::string used = available.is_object()
                                       ? absl::StrFormat("%g", total - available.value("CPU", 0.0))
                                       : "?";
          return {Text(r["node_id"]),
                  Text(r["address"]),
                  Text(r["state"]),
                  r["is_head"].get<bool>() ? "True" : "False",
                  absl::StrFormat("%s / %g", used, total),
                  absl::StrCat(FormatBytes(r["store_used"].get<double>()), " / ",
                               FormatBytes(r["store_capacity"].get<double>())),
                  Text(r["num_workers"])};
        }}},
      {"actors",
       {{"ACTOR_ID", "CLASS_NAME", "NAME", "STATE", "PID", "NODE_ID", "IP", "RESTARTS", "UPTIME",
         "RESOURCES", "DEATH_CAUSE"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          return {Text(r["actor_id"]),
                  Text(r["class_name"]),
                  Text(r["name"]),
                  Text(r["state"]),
                  Text(r["pid"]),
                  Text(r["node_id"]),
                  Text(r["ip"]),
                  Text(r["restarts"]),
                  Seconds(r["uptime_s"].get<double>()),
                  Resources(r["required_resources"]),
                  Cut(Text(r["death_cause"]))};
        }}},
      {"tasks",
       {{"TASK_ID", "FUNCTION", "TYPE", "STATE", "ATTEMPT", "NODE_ID", "WORKER_PID", "START",
         "DURATION", "ERROR"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          const double duration = r["duration_ms"].get<double>();
          return {Text(r["task_id"]),
                  Text(r["function"]),
                  Text(r["type"]),
                  Text(r["state"]),
                  Text(r["attempt"]),
                  Text(r["node_id"]),
                  r["worker_pid"].get<int>() == 0 ? "" : Text(r["worker_pid"]),
                  Clock(r["start_ms"].get<double>() > 0 ? r["start_ms"].get<double>()
                                                        : r["scheduled_ms"].get<double>()),
                  duration > 0 ? absl::StrFormat("%.3fs", duration / 1000) : "",
                  Cut(Text(r["error"]).empty() ? Text(r["last_error"]) : Text(r["error"]))};
        }}},
      {"objects",
       {{"OBJECT_ID", "SIZE", "STATE", "NODE_ID", "OWNER", "REFERENCE"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          return {Text(r["object_id"]), FormatBytes(r["size"].get<double>()),
                  Text(r["state"]),     Text(r["node_id"]),
                  Text(r["owner"]),     Text(r["reference"])};
        }}},
      {"jobs",
       {{"JOB_ID", "STATE", "ENTRYPOINT", "PID", "START", "END", "MESSAGE"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          return {Text(r["job_id"]),
                  Text(r["state"]),
                  Cut(Text(r["entrypoint"])),
                  Text(r["pid"]),
                  Clock(r["start_ms"].get<double>()),
                  Clock(r["end_ms"].get<double>()),
                  Cut(Text(r["message"]))};
        }}},
      {"placement-groups",
       {{"PLACEMENT_GROUP_ID", "NAME", "STRATEGY", "STATE", "BUNDLES"},
        [](const nlohmann::json& r) -> std::vector<std::string> {
          std::string bundles;
          for (const auto& bundle : r["bundles"]) {
            absl::StrAppend(&bundles, bundles.empty() ? "" : "; ", Text(bundle["index"]), ":",
                            bundle["resources"].dump(), "@",
                            Text(bundle["node_id"]).empty() ? "-" : Text(bundle["node_id"]));
          }
          return {Text(r["placement_group_id"]), Text(r["name"]), Text(r["strategy"]),
                  Text(r["state"]), bundles};
        }}},
  };
  return *columns;
}

bool Resolve(const ClusterFlags& cluster, std::string* address, std::string* token) {
  return ResolveCluster(cluster.address, cluster.temp_dir, address, token);
}

}  // namespace

absl::StatusOr<nlohmann::json> QueryState(const std::string& address, const std::string& token,
                                          const std::string& resource,
                                          const std::map<std::string, std::string>& params) {
  auto stub = proto::StateService::NewStub(internal::MakeChannel(address));
  grpc::ClientContext context;
  internal::PrepareContext(&context, token, absl::Seconds(30));
  proto::GetStateRequest request;
  request.set_resource(resource);
  for (const auto& [key, value] : params) (*request.mutable_params())[key] = value;
  proto::GetStateReply reply;
  const grpc::Status status = stub->GetState(&context, request, &reply);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the head at ", address, ": ", status.error_message()));
  }
  if (!status.ok()) return internal::FromGrpc(status, resource);
  nlohmann::json json = nlohmann::json::parse(reply.json(), nullptr, false);
  if (json.is_discarded()) return absl::InternalError("the head answered malformed JSON");
  return json;
}

int List(const ListOptions& options) {
  auto columns = Columns().find(options.resource);
  if (columns == Columns().end()) {
    return Fail("list", absl::StrCat("cannot list '", options.resource,
                                     "'; choose nodes, actors, tasks, objects, jobs or "
                                     "placement-groups"));
  }
  std::map<std::string, std::string> params;
  for (const std::string& filter : options.filters) {
    const size_t eq = filter.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail("list", absl::StrCat("--filter takes KEY=VALUE, not '", filter, "'"));
    }
    params[filter.substr(0, eq)] = filter.substr(eq + 1);
  }
  params["limit"] = std::to_string(options.limit);
  std::string address;
  std::string token;
  if (!Resolve(options.cluster, &address, &token)) return 1;
  absl::StatusOr<nlohmann::json> result = QueryState(address, token, options.resource, params);
  if (!result.ok()) return Fail("list", std::string(result.status().message()));
  const nlohmann::json& rows = (*result)["rows"];
  if (options.json) {
    std::cout << rows.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  PrintHeader(absl::StrCat("List ", options.resource));
  const size_t total = (*result)["total"].get<size_t>();
  std::cout << "Stats:\n------------------------------\nTotal: " << total << "\n";
  if (total > rows.size()) {
    std::cout << "Showing " << rows.size() << " of them (raise --limit to see more)\n";
  }
  if (result->contains("not_recorded_individually") &&
      (*result)["not_recorded_individually"].get<int64_t>() > 0) {
    std::cout << "Not recorded one by one: "
              << (*result)["not_recorded_individually"].get<int64_t>()
              << " older or high-rate tasks (counted in `lumen summary tasks`)\n";
  }
  std::cout << "\nTable:\n------------------------------\n";
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (const auto& row : rows) cells.push_back(columns->second.cells(row));
  PrintTable(columns->second.names, cells);
  return 0;
}

int Summary(const ClusterFlags& cluster, const std::string& what, bool json) {
  if (what != "tasks" && what != "actors") {
    return Fail("summary", absl::StrCat("summarize tasks or actors, not '", what, "'"));
  }
  std::string address;
  std::string token;
  if (!Resolve(cluster, &address, &token)) return 1;
  absl::StatusOr<nlohmann::json> result = QueryState(address, token, "summary/" + what, {});
  if (!result.ok()) return Fail("summary", std::string(result.status().message()));
  if (json) {
    std::cout << result->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  auto counts = [](const nlohmann::json& states) {
    std::vector<std::string> parts;
    for (const auto& [state, n] : states.items())
      parts.push_back(absl::StrCat(state, ": ", Text(n)));
    return absl::StrJoin(parts, ", ");
  };
  std::vector<std::vector<std::string>> rows;
  if (what == "tasks") {
    PrintHeader("Tasks Summary");
    std::cout << "Stats:\n------------------------------------\n"
              << "total_tasks: " << Text((*result)["total"]) << "\n"
              << "recorded_one_by_one: " << Text((*result)["recorded"]) << "\n\n"
              << "Table (group by function):\n------------------------------------\n";
    for (const auto& function : (*result)["functions"]) {
      rows.push_back(
          {Text(function["function"]), counts(function["state_counts"]), Text(function["type"])});
    }
    PrintTable({"FUNC_OR_CLASS_NAME", "STATE_COUNTS", "TYPE"}, rows);
  } else {
    PrintHeader("Actors Summary");
    std::cout << "Stats:\n------------------------------------\n"
              << "total_actors: " << Text((*result)["total"]) << "\n\n"
              << "Table (group by class):\n------------------------------------\n";
    for (const auto& group : (*result)["classes"]) {
      rows.push_back({Text(group["class_name"]), counts(group["state_counts"])});
    }
    PrintTable({"CLASS_NAME", "STATE_COUNTS"}, rows);
  }
  return 0;
}

int Memory(const ClusterFlags& cluster, bool json) {
  std::string address;
  std::string token;
  if (!Resolve(cluster, &address, &token)) return 1;
  absl::StatusOr<nlohmann::json> result = QueryState(address, token, "memory", {});
  if (!result.ok()) return Fail("memory", std::string(result.status().message()));
  if (json) {
    std::cout << result->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  PrintHeader("Object store memory");
  std::vector<std::vector<std::string>> rows;
  for (const auto& node : (*result)["nodes"]) {
    rows.push_back({Text(node["node_id"]), Text(node["address"]), Text(node["state"]),
                    FormatBytes(node["store_used"].get<double>()),
                    FormatBytes(node["store_capacity"].get<double>()), Text(node["store_objects"]),
                    FormatBytes(node.value("store_spilled_bytes", 0.0)),
                    Text(node.value("store_spilled_objects", nlohmann::json(0)))});
  }
  std::cout << "Nodes:\n";
  PrintTable(
      {"NODE_ID", "ADDRESS", "STATE", "USED", "CAPACITY", "OBJECTS", "SPILLED", "SPILLED_OBJECTS"},
      rows);
  rows.clear();
  for (const auto& owner : (*result)["store_objects_by_owner"]) {
    rows.push_back(
        {Text(owner["owner"]), Text(owner["objects"]), FormatBytes(owner["bytes"].get<double>())});
  }
  std::cout << "\nObjects in the store, by owner:\n";
  PrintTable({"OWNER", "OBJECTS", "BYTES"}, rows);
  rows.clear();
  for (const auto& object : (*result)["largest_objects"]) {
    rows.push_back({Text(object["object_id"]), FormatBytes(object["size"].get<double>()),
                    Text(object["state"]), Text(object["node_id"]), Text(object["owner"])});
  }
  std::cout << "\nLargest objects:\n";
  PrintTable({"OBJECT_ID", "SIZE", "STATE", "NODE_ID", "OWNER"}, rows);
  rows.clear();
  for (const auto& process : (*result)["processes"]) {
    rows.push_back({Text(process["kind"]), Text(process["pid"]), Text(process["node_id"]),
                    Text(process["owned_objects"]), Text(process["borrowed_objects"])});
  }
  std::cout << "\nReferences held by processes (small values live in their owner's memory):\n";
  PrintTable({"KIND", "PID", "NODE_ID", "OWNED", "BORROWED"}, rows);
  return 0;
}

absl::Status PrintLog(const std::string& address, const std::string& token,
                      std::map<std::string, std::string> params, bool follow,
                      const std::function<bool()>& keep_following) {
  bool first = true;
  while (true) {
    // Asked before reading, so that the read after the last "keep following" sees everything.
    const bool more = follow && keep_following();
    while (true) {
      absl::StatusOr<nlohmann::json> chunk = QueryState(address, token, "logs", params);
      if (!chunk.ok()) {
        // A followed log may not exist yet (a job that has not started writing).
        if (follow && absl::IsNotFound(chunk.status())) break;
        return chunk.status();
      }
      const int64_t offset = (*chunk)["offset"].get<int64_t>();
      const int64_t size = (*chunk)["size"].get<int64_t>();
      if (first && offset > 0) {
        std::cerr << "(the last " << size - offset << " of " << size << " bytes)\n";
      }
      first = false;
      const std::string data = (*chunk)["data"].get<std::string>();
      std::cout << data << std::flush;
      params["offset"] = std::to_string((*chunk)["next_offset"].get<int64_t>());
      if (!follow || data.empty()) break;
    }
    if (!more) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

int Logs(const LogsOptions& options) {
  std::map<std::string, std::string> params;
  if (!options.actor.empty()) params["actor"] = options.actor;
  if (!options.task.empty()) params["task"] = options.task;
  if (!options.worker.empty()) params["worker"] = options.worker;
  if (!options.node.empty()) params["node"] = options.node;
  if (!options.job.empty()) params["job"] = options.job;
  std::string address;
  std::string token;
  if (!Resolve(options.cluster, &address, &token)) return 1;
  if (params.empty()) {
    // Nothing named: say what there is to read.
    absl::StatusOr<nlohmann::json> nodes = QueryState(address, token, "nodes", {});
    if (!nodes.ok()) return Fail("logs", std::string(nodes.status().message()));
    std::cout << "Name a log: --actor ID, --task ID, --worker ID, --node ID (its daemon) or "
                 "--job ID.\n\n";
    for (const auto& node : (*nodes)["rows"]) {
      std::cout << "Node " << Text(node["node_id"]) << " (" << Text(node["address"]) << ", "
                << Text(node["state"]) << ")\n";
      std::vector<std::vector<std::string>> rows;
      for (const auto& worker : node["workers"]) {
        rows.push_back({Text(worker["worker_id"]), Text(worker["pid"]), Text(worker["kind"]),
                        Text(worker["state"]), Text(worker["actor_id"])});
      }
      PrintTable({"WORKER_ID", "PID", "KIND", "STATE", "ACTOR_ID"}, rows);
      std::cout << "\n";
    }
    return 0;
  }
  const absl::Status status = PrintLog(address, token, params, options.follow, [] { return true; });
  if (!status.ok()) return Fail("logs", std::string(status.message()));
  return 0;
}

}  // namespace lumen::cli
