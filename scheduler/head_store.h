// The head's durable tables: one SQLite database in the session folder (<session>/head.db)
// that a restarted head opens again. Every write is in the database's write-ahead log and
// synced to disk (WAL journal, synchronous=FULL) before the call returns, so the head may
// acknowledge it.
//
//   absl::StatusOr<std::unique_ptr<HeadStore>> store = HeadStore::Open(session + "/head.db");
//   (*store)->Put("actors", actor_id, spec_bytes);
//   absl::StatusOr<std::vector<HeadStore::Record>> all = (*store)->Scan("actors", "");
//   (*store)->KvPut("dfs", "log/00000001", record);
//
// A table is a sorted map from byte-string keys to byte-string values; tables are made on
// first use. The KV store of lumen::kv is one table per namespace. The database is locked
// exclusively while open: a second head on the same session fails to open it.
//
// Thread-safe: one connection behind a mutex.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;
struct sqlite3_stmt;

namespace lumen::scheduler {

class HeadStore {
 public:
  struct Record {
    std::string key;
    std::string value;
  };
  // One write of a batch: a put, or a delete when `value` is empty.
  struct Mutation {
    std::string table;
    std::string key;
    std::optional<std::string> value;
  };

  // Opens (creating if needed) the database at `path`. FAILED_PRECONDITION naming the path if
  // it cannot be created or written, is not a database, or is open in another process.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HeadStore>> Open(const std::string& path);
  ~HeadStore();
  HeadStore(const HeadStore&) = delete;
  HeadStore& operator=(const HeadStore&) = delete;

  const std::string& path() const { return path_; }

  // Sets `key` of `table` to `value`, durably.
  [[nodiscard]] absl::Status Put(std::string_view table, std::string_view key,
                                 std::string_view value);
  // Removes `key`; true if it was there.
  [[nodiscard]] absl::StatusOr<bool> Delete(std::string_view table, std::string_view key);
  // Applies every mutation in one durable transaction: all of them or none.
  [[nodiscard]] absl::Status Write(const std::vector<Mutation>& batch);
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(std::string_view table,
                                                               std::string_view key);
  // Records of `table` whose key starts with `prefix` and sorts after `start_after`, in key
  // order (bytewise), at most `limit` of them (0: all).
  [[nodiscard]] absl::StatusOr<std::vector<Record>> Scan(std::string_view table,
                                                         std::string_view prefix,
                                                         std::string_view start_after = "",
                                                         size_t limit = 0);
  // As Scan, keys only.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> ScanKeys(std::string_view table,
                                                                  std::string_view prefix,
                                                                  std::string_view start_after = "",
                                                                  size_t limit = 0);

  // The KV store of lumen::kv: the table of namespace `ns`.
  static std::string KvTable(std::string_view ns);

 private:
  HeadStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  // FAILED_PRECONDITION unless the journal is a write-ahead log.
  absl::Status CheckWal() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Prepare() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutLocked(std::string_view table, std::string_view key, std::string_view value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> DeleteLocked(std::string_view table, std::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the records Scan describes to `out` (keys only unless `with_values`).
  absl::Status ScanLocked(std::string_view table, std::string_view prefix,
                          std::string_view start_after, size_t limit, bool with_values,
                          std::vector<Record>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(int code, std::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Set at construction.
  const std::string path_;

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  sqlite3_stmt* put_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* get_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* delete_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* scan_ ABSL_GUARDED_BY(mu_) = nullptr;       // a prefix with an upper bound
  sqlite3_stmt* scan_open_ ABSL_GUARDED_BY(mu_) = nullptr;  // "" or only 0xff bytes
};

}  // namespace lumen::scheduler
