// The lumen command: cluster lifecycle, status, built-in jobs and benchmarks.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "bench/baselines.h"
#include "bench/microbenchmarks.h"
#include "cli/cluster_commands.h"
#include "cli/dfs_commands.h"
#include "cli/job_commands.h"
#include "cli/pi.h"
#include "cli/state_commands.h"
#include "common/mutex_mode.h"
#include "lumen/lumen.h"
#include "scheduler/daemon.h"

int main(int argc, char** argv) {
  lumen::internal::DisableMutexDeadlockDetection();
  if (argc > 1 && std::string(argv[1]) == lumen::bench::kEchoServerArg) {
    return lumen::bench::RunEchoServerMain(argc, argv);
  }
  // This executable also runs as a cluster daemon and as a worker of jobs it started.
  lumen::scheduler::MaybeRunDaemonFromEnvironment();
  const char* role = std::getenv("LUMEN_ROLE");
  if (role != nullptr && std::string(role) == "worker") lumen::Init();

  CLI::App app{"Lumen: tasks, actors, futures and a shared-memory object store"};
  app.require_subcommand(1);
  std::string temp_dir;
  auto add_temp_dir = [&temp_dir](CLI::App* command) {
    command->add_option("--temp-dir", temp_dir,
                        "where session folders live (default $LUMEN_TEMP_DIR or /tmp/lumen)");
  };

  lumen::cli::StartOptions start;
  CLI::App* start_cmd = app.add_subcommand("start", "start a head or a node on this machine");
  start_cmd->add_flag("--head", start.head, "start the head of a new cluster");
  start_cmd->add_option("--address", start.address, "join the cluster whose head is HOST:PORT");
  start_cmd->add_option("--token", start.token, "cluster token when joining (or $LUMEN_TOKEN)");
  start_cmd->add_option("--port", start.port, "gRPC port (head default 6379; 0 = any free)")
      ->check(CLI::Range(0, 65535));
  start_cmd->add_option("--ip", start.ip, "address to listen on (0.0.0.0: every interface)")
      ->default_val("127.0.0.1");
  start_cmd->add_option("--node-ip-address", start.node_ip,
                        "address other hosts reach this node at (default: --ip; with "
                        "--ip=0.0.0.0, the address this host reaches the head from)");
  start_cmd->add_option("--num-cpus", start.num_cpus, "CPUs to offer (default: this machine's)")
      ->check(CLI::Range(0, 4096));
  start_cmd->add_option("--resources", start.resources_json,
                        "custom resources as JSON, e.g. '{\"GPU\": 1}'");
  start_cmd
      ->add_option("--object-store-memory", start.object_store_memory,
                   "object store bytes (default min(2 GiB, 30% of memory))")
      ->check(CLI::PositiveNumber);
  start_cmd
      ->add_option("--heartbeat-timeout-ms", start.heartbeat_timeout_ms,
                   "declare a node dead after this long without heartbeats")
      ->check(CLI::Range(100, 3600000));
  start_cmd
      ->add_option("--head-lost-timeout-ms", start.head_lost_timeout_ms,
                   "nodes: stop the workers and exit after this long without reaching the head")
      ->check(CLI::Range(100, 86400000));
  start_cmd
      ->add_option("--max-workers", start.max_workers,
                   "soft cap on running task workers (actors and blocked workers not counted)")
      ->check(CLI::Range(1, 100000));
  start_cmd->add_option("--session-dir", start.session_dir,
                        "heads: restart on this existing session folder, keeping its token, KV "
                        "store and (unless --port is given) port");
  start_cmd
      ->add_option("--dashboard-host", start.dashboard_host, "address the dashboard listens on")
      ->default_val("127.0.0.1");
  start_cmd
      ->add_option("--dashboard-port", start.dashboard_port,
                   "dashboard HTTP port (head; default 8265, 0 = any free, -1 = no dashboard)")
      ->check(CLI::Range(-1, 65535));
  add_temp_dir(start_cmd);

  CLI::App* stop_cmd = app.add_subcommand("stop", "stop the processes of this machine's session");
  add_temp_dir(stop_cmd);

  std::string address;
  bool json = false;
  CLI::App* status_cmd = app.add_subcommand("status", "show nodes, resources and pending work");
  status_cmd->add_option("--address", address, "head HOST:PORT (default: the local cluster)");
  status_cmd->add_flag("--json", json, "print JSON");
  add_temp_dir(status_cmd);

  CLI::App* token_cmd = app.add_subcommand("get-auth-token", "print the cluster token");
  add_temp_dir(token_cmd);

  lumen::cli::PiOptions pi;
  CLI::App* pi_cmd = app.add_subcommand("pi", "estimate pi by Monte Carlo on the cluster");
  pi_cmd->add_option("--samples", pi.samples, "number of samples")->check(CLI::PositiveNumber);
  pi_cmd->add_option("--workers", pi.workers, "worker actors (default: the cluster's CPUs)")
      ->check(CLI::PositiveNumber);
  pi_cmd->add_option("--seed", pi.seed, "random seed");
  pi_cmd->add_option("--address", pi.address, "head HOST:PORT (default: local or embedded)");
  pi_cmd->add_flag("--json", pi.json, "print the result as JSON");
  add_temp_dir(pi_cmd);

  lumen::bench::MicrobenchmarkOptions bench;
  CLI::App* bench_cmd =
      app.add_subcommand("microbenchmark", "run Ray's core microbenchmarks on Lumen");
  bench_cmd->add_option("--address", bench.address, "head HOST:PORT (default: local or embedded)");
  bench_cmd->add_option("--filter", bench.filter, "run benchmarks whose name contains this");
  bench_cmd->add_option("--json", bench.json_path, "also write the results as JSON here");
  bench_cmd->add_option("--num-cpus", bench.num_cpus, "CPUs of an embedded cluster");
  bench_cmd->add_flag("--quick", bench.quick, "short trials (smoke test)");
  add_temp_dir(bench_cmd);

  lumen::cli::DfsOptions dfs;
  std::string dfs_script;
  CLI::App* dfs_cmd = app.add_subcommand(
      "dfs", "the distributed artifact store: its shell, or `dfs start` / `dfs stop`");
  dfs_cmd->require_subcommand(0, 1);
  dfs_cmd->add_flag("--json", dfs.json, "print one JSON object per command");
  dfs_cmd->add_option("-c", dfs_script, "run these commands (separated by ';') and exit");
  dfs_cmd->add_option("--address", dfs.address, "head HOST:PORT (default: the local cluster)");
  add_temp_dir(dfs_cmd);
  CLI::App* dfs_start_cmd =
      dfs_cmd->add_subcommand("start", "create the name node and storage nodes");
  dfs_start_cmd
      ->add_option("--storage-nodes", dfs.storage_nodes,
                   "storage nodes (default 4, or a kept store's)")
      ->check(CLI::Range(1, 256));
  dfs_start_cmd
      ->add_option("--replication", dfs.replication,
                   "replicas per chunk (default 3, or a kept store's)")
      ->check(CLI::Range(1, 256));
  dfs_start_cmd
      ->add_option("--chunk-size", dfs.chunk_size,
                   "bytes per chunk (default 1048576, or a kept store's)")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{64} << 20));
  dfs_start_cmd
      ->add_option("--scrub-interval", dfs.scrub_interval_seconds,
                   "seconds between checks of every replica on disk (default 60; 0: never)")
      ->check(CLI::Range(0.0, 86400.0));
  dfs_start_cmd->add_option("--address", dfs.address,
                            "head HOST:PORT (default: the local cluster)");
  add_temp_dir(dfs_start_cmd);
  CLI::App* dfs_stop_cmd = dfs_cmd->add_subcommand("stop", "stop the store's actors");
  dfs_stop_cmd->add_flag("--purge", dfs.purge, "also delete its chunks and metadata");
  dfs_stop_cmd->add_option("--address", dfs.address, "head HOST:PORT (default: the local cluster)");
  add_temp_dir(dfs_stop_cmd);

  lumen::bench::DfsBenchmarkOptions dfs_bench;
  CLI::App* dfs_bench_cmd = dfs_cmd->add_subcommand(
      "benchmark", "throughput, repair time and list/status latency, each on a store of its own");
  dfs_bench_cmd
      ->add_option("--file-bytes", dfs_bench.file_bytes, "size of the file (default 1 GiB)")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 40));
  dfs_bench_cmd
      ->add_option("--repair-chunks", dfs_bench.repair_chunks, "chunks to repair (default 10000)")
      ->check(CLI::Range(1, 10000000));
  dfs_bench_cmd
      ->add_option("--repair-chunk-size", dfs_bench.repair_chunk_size,
                   "chunk size of the repair store (default 65536)")
      ->check(CLI::Range(uint64_t{4096}, uint64_t{64} << 20));
  dfs_bench_cmd->add_option("--artifacts", dfs_bench.artifacts, "artifacts to list (default 10000)")
      ->check(CLI::Range(1, 10000000));
  dfs_bench_cmd->add_option("--json", dfs_bench.json_path, "also write the results as JSON here");
  dfs_bench_cmd->add_option("--address", dfs.address,
                            "head HOST:PORT (default: the local cluster)");
  add_temp_dir(dfs_bench_cmd);
  // State of the cluster: list, summary, memory, logs (the dashboard's API, as tables).
  lumen::cli::ClusterFlags cluster;
  auto add_cluster = [&](CLI::App* command) {
    command->add_option("--address", cluster.address,
                        "head HOST:PORT (default: the local cluster)");
    command->add_option("--temp-dir", cluster.temp_dir,
                        "where session folders live (default $LUMEN_TEMP_DIR or /tmp/lumen)");
  };
  lumen::cli::ListOptions list;
  CLI::App* list_cmd = app.add_subcommand("list",
                                          "list nodes, actors, tasks, objects, jobs or "
                                          "placement-groups");
  list_cmd->add_option("resource", list.resource, "what to list")
      ->required()
      ->check(CLI::IsMember({"nodes", "actors", "tasks", "objects", "jobs", "placement-groups"}));
  list_cmd->add_option("--filter", list.filters, "KEY=VALUE: only rows whose KEY is VALUE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  list_cmd->add_option("--limit", list.limit, "at most this many rows (default 100)")
      ->check(CLI::Range(1, 100000));
  list_cmd->add_flag("--json", list.json, "print JSON");
  add_cluster(list_cmd);

  std::string summary_what;
  bool summary_json = false;
  CLI::App* summary_cmd = app.add_subcommand("summary", "tasks or actors, counted by state");
  summary_cmd->add_option("what", summary_what, "tasks or actors")
      ->required()
      ->check(CLI::IsMember({"tasks", "actors"}));
  summary_cmd->add_flag("--json", summary_json, "print JSON");
  add_cluster(summary_cmd);

  bool memory_json = false;
  CLI::App* memory_cmd =
      app.add_subcommand("memory", "object store use per node, objects and who holds them");
  memory_cmd->add_flag("--json", memory_json, "print JSON");
  add_cluster(memory_cmd);

  lumen::cli::LogsOptions logs;
  CLI::App* logs_cmd = app.add_subcommand("logs",
                                          "print the log of an actor, task, worker, node "
                                          "or job (by id)");
  auto* by_actor = logs_cmd->add_option("--actor", logs.actor, "the actor's worker log");
  auto* by_task = logs_cmd->add_option("--task", logs.task, "the log of the worker that ran it");
  auto* by_worker = logs_cmd->add_option("--worker", logs.worker, "a worker's log");
  logs_cmd->add_option("--node", logs.node, "a node's daemon log (or the node of --worker)");
  auto* by_job = logs_cmd->add_option("--job", logs.job, "a job's output");
  by_actor->excludes(by_task)->excludes(by_worker)->excludes(by_job);
  by_task->excludes(by_worker)->excludes(by_job);
  by_worker->excludes(by_job);
  logs_cmd->add_flag("--follow,-f", logs.follow, "keep printing what is appended");
  add_cluster(logs_cmd);

  // Jobs: drivers run by the head.
  CLI::App* job_cmd = app.add_subcommand("job",
                                         "run drivers on the head: submit, status, logs, "
                                         "stop, list");
  job_cmd->require_subcommand(1);
  lumen::cli::JobSubmitOptions submit;
  CLI::App* submit_cmd = job_cmd->add_subcommand(
      "submit", "run COMMAND on the head machine as a driver of this cluster");
  submit_cmd->add_option("--working-dir", submit.working_dir,
                         "directory on the head machine to run in (default: the current one)");
  submit_cmd->add_flag("--no-wait", submit.no_wait, "return once submitted; do not stream output");
  submit_cmd->add_option("command", submit.command, "the command, after --")->required();
  add_cluster(submit_cmd);
  std::string job_id;
  bool job_json = false;
  bool job_follow = false;
  CLI::App* job_status_cmd = job_cmd->add_subcommand("status", "a job's state");
  job_status_cmd->add_option("job_id", job_id, "e.g. job-1")->required();
  job_status_cmd->add_flag("--json", job_json, "print JSON");
  add_cluster(job_status_cmd);
  CLI::App* job_logs_cmd = job_cmd->add_subcommand("logs", "a job's output");
  job_logs_cmd->add_option("job_id", job_id, "e.g. job-1")->required();
  job_logs_cmd->add_flag("--follow,-f", job_follow, "keep printing until the job ends");
  add_cluster(job_logs_cmd);
  CLI::App* job_stop_cmd =
      job_cmd->add_subcommand("stop", "stop a job (SIGTERM, then SIGKILL after a grace period)");
  job_stop_cmd->add_option("job_id", job_id, "e.g. job-1")->required();
  add_cluster(job_stop_cmd);
  CLI::App* job_list_cmd = job_cmd->add_subcommand("list", "every job the head remembers");
  job_list_cmd->add_flag("--json", job_json, "print JSON");
  add_cluster(job_list_cmd);

  CLI11_PARSE(app, argc, argv);

  if (list_cmd->parsed()) {
    list.cluster = cluster;
    return lumen::cli::List(list);
  }
  if (summary_cmd->parsed()) return lumen::cli::Summary(cluster, summary_what, summary_json);
  if (memory_cmd->parsed()) return lumen::cli::Memory(cluster, memory_json);
  if (logs_cmd->parsed()) {
    logs.cluster = cluster;
    return lumen::cli::Logs(logs);
  }
  if (submit_cmd->parsed()) {
    submit.cluster = cluster;
    return lumen::cli::JobSubmit(submit);
  }
  if (job_status_cmd->parsed()) return lumen::cli::JobStatus(cluster, job_id, job_json);
  if (job_logs_cmd->parsed()) return lumen::cli::JobLogs(cluster, job_id, job_follow);
  if (job_stop_cmd->parsed()) return lumen::cli::JobStop(cluster, job_id);
  if (job_list_cmd->parsed()) return lumen::cli::JobList(cluster, job_json);

  if (start_cmd->parsed()) {
    start.temp_dir = temp_dir;
    return lumen::cli::Start(start);
  }
  if (stop_cmd->parsed()) return lumen::cli::Stop(temp_dir);
  if (status_cmd->parsed()) return lumen::cli::Status(address, temp_dir, json);
  if (token_cmd->parsed()) return lumen::cli::PrintAuthToken(temp_dir);
  if (pi_cmd->parsed()) {
    pi.temp_dir = temp_dir;
    return lumen::cli::RunPi(pi);
  }
  if (dfs_cmd->parsed()) {
    dfs.temp_dir = temp_dir;
    if (dfs_start_cmd->parsed()) return lumen::cli::DfsStart(dfs);
    if (dfs_stop_cmd->parsed()) return lumen::cli::DfsStop(dfs);
    if (dfs_bench_cmd->parsed()) return lumen::cli::DfsBenchmark(dfs, dfs_bench);
    if (dfs_cmd->count("-c") > 0) dfs.script = dfs_script;
    return lumen::cli::RunDfsShell(dfs);
  }
  if (bench_cmd->parsed()) {
    bench.temp_dir = temp_dir;
    return lumen::bench::RunMicrobenchmarks(bench);
  }
  return 1;
}
