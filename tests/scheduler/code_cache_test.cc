// CodeCache and CodeService against a hand-written head that answers GetDriverJob: a node
// fetches a job's executable by hash from the node that registered it, and fails clearly when
// it cannot.
#include "scheduler/code_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/synchronization/notification.h"
#include "common/process.h"
#include "common/rpc.h"
#include "scheduler/code_service.h"
#include "tests/temp_dir.h"

namespace lumen::scheduler {
namespace {

constexpr char kToken[] = "code-cache-test";

// A head whose job table holds the one row a test sets (or none).
class FakeHead final : public proto::HeadService::Service {
 public:
  grpc::Status GetDriverJob(grpc::ServerContext* context, const proto::GetDriverJobRequest* request,
                            proto::DriverJobRecord* reply) override {
    if (auto status = internal::CheckToken(context, kToken); !status.ok()) return status;
    absl::MutexLock lock(&mu);
    if (!record || request->job_id() != record->job_id()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
    }
    *reply = *record;
    return grpc::Status::OK;
  }
  void Set(proto::DriverJobRecord row) {
    absl::MutexLock lock(&mu);
    record = std::move(row);
  }

 private:
  absl::Mutex mu;
  std::optional<proto::DriverJobRecord> record ABSL_GUARDED_BY(mu);
};

// A temp dir, a `/bin/sleep` child standing in for a driver, a source cache that registered the
// child's executable under a path nobody has, and a gRPC server with the fake head and the
// source's CodeService.
struct Fixture {
  Fixture() {
    source = std::make_unique<CodeCache>(CacheOptions(dir + "/source"));
    service = std::make_unique<CodeService>(kToken, source.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&head);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    address = "127.0.0.1:" + std::to_string(port);
    internal::SpawnOptions options;
    options.argv = {"/bin/sleep", "60"};
    child = internal::StartProcess(options).value();
  }
  ~Fixture() {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    server->Shutdown();
  }
  CodeCache::Options CacheOptions(const std::string& cache_dir) const {
    return {.dir = cache_dir,
            .own_executable = "/nowhere/lumen",
            .head_address = address,
            .token = kToken,
            .job_lookup_timeout = absl::Milliseconds(300),
            .fetch_timeout = absl::Seconds(30)};
  }
  // The head's row for `job`: its executable came from the source node with `hash`.
  void Publish(uint64_t job, const std::string& hash) {
    proto::DriverJobRecord record;
    record.set_job_id(job);
    record.set_executable(kDriverPath);
    record.set_executable_hash(hash);
    record.set_code_source(address);
    head.Set(std::move(record));
  }

  static constexpr char kDriverPath[] = "/nowhere/driver";
  testing::TempDir temp{"code_cache"};  // declared first: removed after everything using it
  const std::string dir = temp.path();
  FakeHead head;
  std::unique_ptr<CodeCache> source;
  std::unique_ptr<CodeService> service;
  int port = 0;
  std::string address;
  std::unique_ptr<grpc::Server> server;
  int child = 0;
};

std::string HashOfFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  auto hash = CodeCache::HashFd(fd);
  close(fd);
  return hash.ok() ? *hash : "";
}

// Registers the fixture's child as the driver of `job` under `path`, and waits for its hash.
std::string RegisterAndWait(CodeCache& cache, int pid, uint64_t job, const std::string& path) {
  absl::Notification hashed;
  auto runnable = cache.RegisterDriver(job, pid, path, [&hashed](uint64_t) { hashed.Notify(); });
  if (!runnable.ok() || !hashed.WaitForNotificationWithTimeout(absl::Seconds(30))) return "";
  const CodeCache::JobHash hash = cache.HashOf(job);
  return hash.pending ? "" : hash.hash;
}

}  // namespace

TEST_CASE(
    "a node fetches a job's executable by hash from the driver's node and runs it from "
    "its cache",
    "[code]") {
  Fixture f;
  const std::string hash = RegisterAndWait(*f.source, f.child, 7, Fixture::kDriverPath);
  CHECK(hash == HashOfFile("/bin/sleep"));
  // The driver's path is not what it runs here, so the driver's node keeps a copy and runs it.
  CHECK(f.source->Prepare(7, Fixture::kDriverPath, absl::Now()).value());
  CHECK(f.source->RunnablePath(7, Fixture::kDriverPath) == f.source->CachePath(hash));

  f.Publish(7, hash);
  CodeCache target(f.CacheOptions(f.dir + "/target"));
  // Before it is prepared, a job runs from the path it was named by.
  CHECK(target.RunnablePath(7, Fixture::kDriverPath) == Fixture::kDriverPath);
  auto ready = target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(30));
  REQUIRE(ready.ok());
  CHECK(*ready);
  const std::string runnable = target.RunnablePath(7, Fixture::kDriverPath);
  CHECK(runnable == target.CachePath(hash));
  CHECK(HashOfFile(runnable) == hash);
  struct stat st {};
  REQUIRE(stat(runnable.c_str(), &st) == 0);
  CHECK((st.st_mode & S_IXUSR) != 0);
  // No temp file is left beside it.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(f.dir + "/target")) {
    (void)entry;
    ++files;
  }
  CHECK(files == 1);
  // The fetched copy is served onwards, and this node's own binary needs no preparation.
  CHECK(target.FileWithHash(hash) == runnable);
  CHECK(target.Prepare(8, "/nowhere/lumen", absl::Now()).value());
}

TEST_CASE(
    "a driver whose path is what it runs is runnable at once, and other nodes wait while its "
    "hash is pending",
    "[code]") {
  Fixture f;
  absl::Notification hashed;
  auto runnable =
      f.source->RegisterDriver(7, f.child, "/bin/sleep", [&](uint64_t) { hashed.Notify(); });
  REQUIRE(runnable.ok());
  CHECK(*runnable);
  CHECK(f.source->Prepare(7, "/bin/sleep", absl::Now()).value());
  CHECK(f.source->RunnablePath(7, "/bin/sleep") == "/bin/sleep");
  REQUIRE(hashed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  CHECK(f.source->HashOf(7).hash == HashOfFile("/bin/sleep"));
  CHECK_FALSE(f.source->HashOf(7).pending);

  // The head's row says the hash is still coming: another node waits for it, past the
  // lookup timeout (300 ms), instead of failing or falling back to a path it does not have.
  proto::DriverJobRecord record;
  record.set_job_id(7);
  record.set_executable(Fixture::kDriverPath);
  record.set_code_source(f.address);
  record.set_executable_hash_pending(true);
  f.head.Set(record);
  CodeCache target(f.CacheOptions(f.dir + "/target"));
  auto waiting = target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(1));
  REQUIRE(waiting.ok());
  CHECK_FALSE(*waiting);
  f.Publish(7, f.source->HashOf(7).hash);
  auto ready = target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(30));
  REQUIRE(ready.ok());
  CHECK(*ready);
  CHECK(target.RunnablePath(7, Fixture::kDriverPath) == target.CachePath(f.source->HashOf(7).hash));
}

TEST_CASE("a job whose executable no node can serve fails with the hash and the source named",
          "[code]") {
  Fixture f;
  const std::string missing(32, '0');
  f.Publish(7, missing);
  CodeCache target(f.CacheOptions(f.dir + "/target"));
  auto ready = target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(30));
  REQUIRE(!ready.ok());
  const std::string message(ready.status().message());
  CHECK(message.find("cannot fetch the executable of job 7") != std::string::npos);
  CHECK(message.find(missing) != std::string::npos);
  CHECK(message.find(f.address) != std::string::npos);
  // The outcome is kept: asking again fails at once, the same way.
  auto again = target.Prepare(7, Fixture::kDriverPath, absl::Now());
  REQUIRE(!again.ok());
  CHECK(again.status().message() == ready.status().message());
}

TEST_CASE("a job whose preparation failed is prepared again after retry_after", "[code]") {
  Fixture f;
  const std::string hash = RegisterAndWait(*f.source, f.child, 1, Fixture::kDriverPath);
  REQUIRE(!hash.empty());
  CodeCache::Options options = f.CacheOptions(f.dir + "/target");
  options.retry_after = absl::ZeroDuration();
  CodeCache target(options);
  // The head does not know the job yet, and this node has no file at its path.
  REQUIRE(!target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(30)).ok());
  f.Publish(7, hash);
  auto ready = target.Prepare(7, Fixture::kDriverPath, absl::Now() + absl::Seconds(30));
  REQUIRE(ready.ok());
  CHECK(*ready);
  CHECK(target.RunnablePath(7, Fixture::kDriverPath) == target.CachePath(hash));
}

TEST_CASE("a job the head does not know runs from its path when this node has that file",
          "[code]") {
  Fixture f;
  CodeCache target(f.CacheOptions(f.dir + "/target"));
  CHECK(target.Prepare(9, "/bin/sleep", absl::Now() + absl::Seconds(30)).value());
  CHECK(target.RunnablePath(9, "/bin/sleep") == "/bin/sleep");
  auto missing = target.Prepare(10, Fixture::kDriverPath, absl::Now() + absl::Seconds(30));
  REQUIRE(!missing.ok());
  CHECK(std::string(missing.status().message()).find("is not on this node") != std::string::npos);
}

TEST_CASE("a prepare that cannot finish by its deadline answers not yet instead of waiting",
          "[code]") {
  Fixture f;  // the head knows no job: the lookup keeps asking for job_lookup_timeout
  CodeCache target(f.CacheOptions(f.dir + "/target"));
  auto ready = target.Prepare(11, Fixture::kDriverPath, absl::Now());
  REQUIRE(ready.ok());
  CHECK(!*ready);
}

}  // namespace lumen::scheduler
