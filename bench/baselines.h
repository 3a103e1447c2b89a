// Machine baselines that `lumen microbenchmark` prints beside Ray's microbenchmarks, measured in
// the same run by the same binary, so that Lumen's figures can be read against what the machine
// itself can do: a plain gRPC round trip and memcpy bandwidth.
//
//   // in main(): if (argc > 1 && std::string_view(argv[1]) == kEchoServerArg)
//   //              return RunEchoServerMain(argc, argv);
//   std::cout << FormatRayLine(MeasureGrpcEcho(options)) << "\n";
//   std::cout << FormatRayLine(MeasureMemcpy(options)) << "\n";
#pragma once

#include "bench/harness.h"

namespace lumen::bench {

// argv[1] with which MeasureGrpcEcho starts this same executable as its echo server.
inline constexpr char kEchoServerArg[] = "__bench-echo-server";

// Bandwidth of copying one warm 256 MiB buffer into another, in GB/s (1e9 bytes), named
// "baseline_memcpy_gigabytes". Allocates 512 MiB for the duration of the call.
Result MeasureMemcpy(const HarnessOptions& options);

// Synchronous unary gRPC calls with an 8-byte payload, one at a time, to an echo server on
// 127.0.0.1, in calls/s, named "baseline_grpc_unary_echo". The server is this executable
// (/proc/self/exe kEchoServerArg), started with fork+exec before this call creates any gRPC
// object, and killed and reaped before it returns. If the server cannot be started or a call
// fails, logs the error and returns a mean and stddev of 0.
Result MeasureGrpcEcho(const HarnessOptions& options);

// main() of the echo server process: serves on 127.0.0.1 at a port the kernel picks, writes that
// port and a newline to stdout, and returns 0 once stdin reaches end of file. Returns 1 if the
// server cannot start.
int RunEchoServerMain(int argc, char** argv);

}  // namespace lumen::bench
