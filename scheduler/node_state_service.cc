#include "scheduler/node_state_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/rpc.h"

namespace lumen::scheduler {

using internal::CheckToken;

absl::StatusOr<proto::LogChunk> ReadLogChunk(const std::string& path, int64_t offset,
                                             int64_t max_bytes) {
  max_bytes = std::clamp<int64_t>(max_bytes, 0, kMaxLogChunk);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError("there is no such log file (yet)");
    return absl::ErrnoToStatus(errno, "cannot open the log");
  }
  struct stat st = {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError("the log is not a regular file");
  }
  const int64_t size = st.st_size;
  const int64_t start =
      offset < 0 ? std::max<int64_t>(0, size - max_bytes) : std::min(offset, size);
  const int64_t length = std::min(max_bytes, size - start);
  proto::LogChunk chunk;
  chunk.set_offset(start);
  chunk.set_size(size);
  std::string* data = chunk.mutable_data();
  data->resize(static_cast<size_t>(length));
  int64_t done = 0;
  while (done < length) {
    const ssize_t n =
        pread(fd, data->data() + done, static_cast<size_t>(length - done), start + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += n;
  }
  close(fd);
  data->resize(static_cast<size_t>(done));
  return chunk;
}

NodeStateService::NodeStateService(std::string token, std::string session_dir,
                                   std::string daemon_log, NodeManager* node_manager)
    : token_(std::move(token)),
      session_dir_(std::move(session_dir)),
      daemon_log_(std::move(daemon_log)),
      node_manager_(node_manager) {}

grpc::Status NodeStateService::ReadNodeLog(grpc::ServerContext* context,
                                           const proto::ReadNodeLogRequest* request,
                                           proto::LogChunk* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  std::string file;
  if (request->kind() == proto::ReadNodeLogRequest::DAEMON) {
    file = daemon_log_;
  } else if (request->worker_id().size() == 8) {
    // The name is built from the id's hex digits alone: nothing of the request is a path.
    file = absl::StrCat("worker-", internal::Hex(request->worker_id()), ".log");
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a worker id is 8 bytes");
  }
  auto chunk = ReadLogChunk(absl::StrCat(session_dir_, "/logs/", file), request->offset(),
                            request->max_bytes());
  if (!chunk.ok()) return internal::ToGrpc(chunk.status());
  *reply = std::move(*chunk);
  return grpc::Status::OK;
}

grpc::Status NodeStateService::ListStoreObjects(grpc::ServerContext* context,
                                                const proto::ListStoreObjectsRequest* request,
                                                proto::ListStoreObjectsReply* reply) {
  if (auto status = CheckToken(context, token_); !status.ok()) return status;
  const size_t limit = static_cast<size_t>(std::clamp(request->limit(), 0, 100'000));
  std::map<uint64_t, proto::ProcessSummary> clients;
  for (auto& process : node_manager_->Processes()) clients[process.client_id()] = process;
  reply->set_total(static_cast<int64_t>(node_manager_->store().Stats().num_objects));
  std::vector<objectstore::ObjectSummary> objects = node_manager_->store().List(limit);
  const size_t in_memory = objects.size();
  for (auto& spilled : node_manager_->SpilledObjects(limit)) objects.push_back(std::move(spilled));
  for (size_t i = 0; i < objects.size(); ++i) {
    const objectstore::ObjectSummary& object = objects[i];
    proto::StoreObject* out = reply->add_objects();
    out->set_spilled(i >= in_memory);
    out->set_object_id(object.id);
    out->set_size(object.size);
    out->set_sealed(object.sealed);
    out->set_owner_client_id(object.owner);
    auto owner = clients.find(object.owner);
    if (owner != clients.end()) {
      out->set_owner_pid(owner->second.pid());
      out->set_owner_kind(owner->second.kind());
      out->set_owner_worker_id(owner->second.worker_id());
    }
  }
  return grpc::Status::OK;
}

}  // namespace lumen::scheduler
