#include "scheduler/code_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/rpc.h"

namespace lumen::scheduler {

namespace {
constexpr size_t kChunkBytes = 1 << 20;
}  // namespace

CodeService::CodeService(std::string token, CodeCache* cache)
    : token_(std::move(token)), cache_(cache) {}

grpc::Status CodeService::FetchExecutable(grpc::ServerContext* context,
                                          const proto::FetchExecutableRequest* request,
                                          grpc::ServerWriter<proto::ExecutableChunk>* writer) {
  if (auto status = internal::CheckToken(context, token_); !status.ok()) return status;
  const std::string path = cache_->FileWithHash(request->hash());
  if (path.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("this node has no executable with hash ", request->hash()));
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat("cannot open ", path, ": ", why));
  }
  absl::Cleanup close_fd = [fd] { close(fd); };
  proto::ExecutableChunk chunk;
  chunk.set_total_size(static_cast<uint64_t>(st.st_size));
  std::string* data = chunk.mutable_data();
  off_t offset = 0;
  while (offset < st.st_size) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    data->resize(kChunkBytes);
    const ssize_t n = pread(fd, data->data(), data->size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("cannot read ", path, " at byte ", offset));
    }
    data->resize(static_cast<size_t>(n));
    if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "reader left");
    chunk.clear_total_size();
    offset += n;
  }
  if (st.st_size == 0) writer->Write(chunk);
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
