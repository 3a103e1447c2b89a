#include "bench/baselines.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/logging.h"
#include "proto/bench_echo.grpc.pb.h"

namespace lumen::bench {
namespace {

constexpr char kSelfExe[] = "/proc/self/exe";
// Set in the echo server's environment. Should an executable fail to hand kEchoServerArg to
// RunEchoServerMain, its child would run the benchmarks, and start a server of its own, and so on;
// finding this variable, MeasureGrpcEcho stops that chain at the first child.
constexpr char kEchoServerEnv[] = "LUMEN_BENCH_ECHO_SERVER";
constexpr auto kServerStartTimeout = std::chrono::seconds(20);
constexpr auto kCallTimeout = std::chrono::seconds(10);
constexpr size_t kEchoPayloadBytes = 8;
constexpr size_t kMemcpyBytes = size_t{256} << 20;

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Like pipe2(O_CLOEXEC), but both ends are numbered 3 or above, so that the child can dup2 them
// onto its stdin and stdout without one clobbering the other.
absl::Status MakePipe(int fds[2]) {
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  for (int i = 0; i < 2; ++i) {
    if (fds[i] >= 3) continue;
    const int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    if (moved < 0) {
      const int error = errno;
      CloseFd(fds[0]);
      CloseFd(fds[1]);
      return absl::ErrnoToStatus(error, "fcntl(F_DUPFD_CLOEXEC)");
    }
    close(fds[i]);
    fds[i] = moved;
  }
  return absl::OkStatus();
}

// The echo server: this executable run as `/proc/self/exe kEchoServerArg`, with stdin and stdout
// connected to pipes. Killed and reaped on destruction. Not thread-safe.
class EchoServerProcess {
 public:
  // Starts the server and waits for it to report its port. Must run before this process creates
  // any gRPC object, so that the fork happens with no gRPC threads around.
  static absl::StatusOr<std::unique_ptr<EchoServerProcess>> Start();

  ~EchoServerProcess() {
    CloseFd(stdin_fd_);
    CloseFd(stdout_fd_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  EchoServerProcess(const EchoServerProcess&) = delete;
  EchoServerProcess& operator=(const EchoServerProcess&) = delete;

  int port() const { return port_; }

 private:
  EchoServerProcess() = default;
  absl::Status ReadPort();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;   // Write end of the server's stdin; the server exits when it closes.
  int stdout_fd_ = -1;  // Read end of the server's stdout, which carries the port.
  int port_ = 0;
};

absl::StatusOr<std::unique_ptr<EchoServerProcess>> EchoServerProcess::Start() {
  int to_child[2];
  int from_child[2];
  if (absl::Status s = MakePipe(to_child); !s.ok()) return s;
  if (absl::Status s = MakePipe(from_child); !s.ok()) {
    CloseFd(to_child[0]);
    CloseFd(to_child[1]);
    return s;
  }

  // Prepared before fork: the child may only make async-signal-safe calls until exec.
  std::string arg0 = kSelfExe;
  std::string arg1 = kEchoServerArg;
  char* child_argv[] = {arg0.data(), arg1.data(), nullptr};
  std::string marker = std::string(kEchoServerEnv) + "=1";
  std::vector<char*> child_env;
  for (char** e = environ; *e != nullptr; ++e) child_env.push_back(*e);
  child_env.push_back(marker.data());
  child_env.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    for (int* fd : {&to_child[0], &to_child[1], &from_child[0], &from_child[1]}) CloseFd(*fd);
    return absl::ErrnoToStatus(error, "fork");
  }
  if (pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    if (dup2(to_child[0], STDIN_FILENO) < 0 || dup2(from_child[1], STDOUT_FILENO) < 0) _exit(127);
    close_range(3, ~0U, 0);
    execve(kSelfExe, child_argv, child_env.data());
    _exit(127);
  }

  auto process = std::unique_ptr<EchoServerProcess>(new EchoServerProcess());
  process->pid_ = pid;
  process->stdin_fd_ = to_child[1];
  process->stdout_fd_ = from_child[0];
  close(to_child[0]);
  close(from_child[1]);
  if (absl::Status s = process->ReadPort(); !s.ok()) return s;
  return process;
}

absl::Status EchoServerProcess::ReadPort() {
  const auto deadline = std::chrono::steady_clock::now() + kServerStartTimeout;
  std::string line;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError("echo server did not report its port in time");
    }
    pollfd pfd = {stdout_fd_, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll on echo server");
    if (ready <= 0) continue;
    char buf[64];
    const ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "read from echo server");
    if (n == 0) return absl::UnavailableError("echo server exited before reporting its port");
    if (n > 0) line.append(buf, static_cast<size_t>(n));
  }
  const std::string_view text(line.data(), line.find('\n'));
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port_);
  if (ec != std::errc() || end != text.data() + text.size() || port_ <= 0 || port_ > 65535) {
    return absl::InternalError("echo server reported a bad port: '" + std::string(text) + "'");
  }
  return absl::OkStatus();
}

class EchoServiceImpl final : public Echo::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* /*context*/, const EchoRequest* request,
                    EchoReply* reply) override {
    reply->set_payload(request->payload());
    return grpc::Status::OK;
  }
};

// Makes the write to `p`'s memory observable, so that the compiler keeps it.
void KeepMemory(void* p) { asm volatile("" : : "r"(p) : "memory"); }

}  // namespace

Result MeasureMemcpy(const HarnessOptions& options) {
  auto src = std::make_unique_for_overwrite<char[]>(kMemcpyBytes);
  auto dst = std::make_unique_for_overwrite<char[]>(kMemcpyBytes);
  std::memset(src.get(), 0x5a, kMemcpyBytes);
  std::memset(dst.get(), 0, kMemcpyBytes);
  return TimeIt(
      "baseline_memcpy_gigabytes",
      [&] {
        std::memcpy(dst.get(), src.get(), kMemcpyBytes);
        KeepMemory(dst.get());
      },
      static_cast<double>(kMemcpyBytes) / 1e9, options);
}

Result MeasureGrpcEcho(const HarnessOptions& options) {
  Result failed;
  failed.name = "baseline_grpc_unary_echo";

  if (std::getenv(kEchoServerEnv) != nullptr) {
    LUMEN_LOG(ERROR) << "gRPC echo baseline: this process was started as an echo server, so its "
                     << "main() must call RunEchoServerMain when argv[1] is " << kEchoServerArg;
    return failed;
  }

  // The server is forked before any gRPC object exists here; it is declared first so that it is
  // killed after the channel is gone.
  absl::StatusOr<std::unique_ptr<EchoServerProcess>> server = EchoServerProcess::Start();
  if (!server.ok()) {
    LUMEN_LOG(ERROR) << "gRPC echo baseline: cannot start the echo server: " << server.status();
    return failed;
  }

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + kServerStartTimeout)) {
    LUMEN_LOG(ERROR) << "gRPC echo baseline: cannot connect to the echo server on port "
                     << (*server)->port();
    return failed;
  }
  std::unique_ptr<Echo::Stub> stub = Echo::NewStub(channel);

  EchoRequest request;
  request.set_payload(std::string(kEchoPayloadBytes, 'x'));
  EchoReply reply;
  grpc::Status first_failure;  // Once a call fails, the remaining calls are skipped.
  Result result = TimeIt(
      "baseline_grpc_unary_echo",
      [&] {
        if (!first_failure.ok()) return;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
        first_failure = stub->Echo(&context, request, &reply);
      },
      1, options);
  if (!first_failure.ok()) {
    LUMEN_LOG(ERROR) << "gRPC echo baseline: a call failed: " << first_failure.error_message()
                     << " (code " << static_cast<int>(first_failure.error_code()) << ")";
    return failed;
  }
  return result;
}

int RunEchoServerMain(int /*argc*/, char** /*argv*/) {
  EchoServiceImpl service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LUMEN_LOG(ERROR) << "echo server: cannot listen on 127.0.0.1";
    return 1;
  }

  const std::string line = std::to_string(port) + "\n";
  for (size_t written = 0; written < line.size();) {
    const ssize_t n = write(STDOUT_FILENO, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      LUMEN_LOG(ERROR) << "echo server: cannot report the port: " << std::strerror(errno);
      return 1;
    }
    written += static_cast<size_t>(n);
  }

  char buf[256];
  for (;;) {
    const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    break;
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace lumen::bench
