#include "scheduler/head_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace lumen::scheduler {
namespace {

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS records ("
    "  tbl TEXT NOT NULL,"
    "  key BLOB NOT NULL,"
    "  value BLOB NOT NULL,"
    "  PRIMARY KEY (tbl, key)"
    ") WITHOUT ROWID;";

// A blob that is never SQL NULL, even when empty.
int BindBytes(sqlite3_stmt* stmt, int index, std::string_view bytes) {
  return sqlite3_bind_blob64(stmt, index, bytes.empty() ? "" : bytes.data(), bytes.size(),
                             SQLITE_TRANSIENT);
}

int BindText(sqlite3_stmt* stmt, int index, std::string_view text) {
  return sqlite3_bind_text64(stmt, index, text.empty() ? "" : text.data(), text.size(),
                             SQLITE_TRANSIENT, SQLITE_UTF8);
}

std::string ColumnBytes(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

// The smallest key greater than every key that starts with `prefix`, or nullopt if there is
// none (the prefix is empty or all 0xff bytes).
std::optional<std::string> PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last != 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::nullopt;
}

// Resets a statement when it goes out of scope, so that it never holds a read lock.
class StatementScope {
 public:
  explicit StatementScope(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementScope() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<HeadStore>> HeadStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the head database ", path, ": ", message));
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<HeadStore> store(new HeadStore(path, db));
  absl::MutexLock lock(&store->mu_);
  // WAL with synchronous=FULL: a commit is on disk when it returns. EXCLUSIVE locking keeps a
  // second head off this file; the first write below takes the lock at once.
  absl::Status status;
  for (const char* sql : {"PRAGMA locking_mode=EXCLUSIVE;", "PRAGMA journal_mode=WAL;",
                          "PRAGMA synchronous=FULL;", kSchema, "BEGIN IMMEDIATE;", "COMMIT;"}) {
    status = store->Exec(sql);
    if (!status.ok()) break;
  }
  if (status.ok()) status = store->CheckWal();
  if (status.ok()) status = store->Prepare();
  if (!status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the head database ", path, ": ", status.message()));
  }
  return store;
}

HeadStore::~HeadStore() {
  absl::MutexLock lock(&mu_);
  for (sqlite3_stmt* stmt : {put_, get_, delete_, scan_, scan_open_}) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status HeadStore::Error(int code, std::string_view what) {
  const std::string message = absl::StrCat(std::string(what), ": ", sqlite3_errmsg(db_));
  switch (code & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_TOOBIG:
      return absl::InvalidArgumentError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(message, " (another head may have this session's database open)"));
    default:
      return absl::InternalError(message);
  }
}

absl::Status HeadStore::Exec(const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  sqlite3_free(error);
  if (rc != SQLITE_OK) return Error(rc, sql);
  return absl::OkStatus();
}

absl::Status HeadStore::CheckWal() {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode;", -1, &stmt, nullptr);
  std::string mode;
  if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) mode = ColumnBytes(stmt, 0);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return Error(rc, "cannot read the journal mode");
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "its file system does not support a write-ahead log (journal mode is '", mode, "')"));
  }
  return absl::OkStatus();
}

absl::Status HeadStore::Prepare() {
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } statements[] = {
      {&put_, "INSERT OR REPLACE INTO records (tbl, key, value) VALUES (?1, ?2, ?3);"},
      {&get_, "SELECT value FROM records WHERE tbl = ?1 AND key = ?2;"},
      {&delete_, "DELETE FROM records WHERE tbl = ?1 AND key = ?2;"},
      {&scan_,
       "SELECT key, value FROM records WHERE tbl = ?1 AND key >= ?2 AND key > ?3 AND key < ?4 "
       "ORDER BY key LIMIT ?5;"},
      {&scan_open_,
       "SELECT key, value FROM records WHERE tbl = ?1 AND key >= ?2 AND key > ?3 "
       "ORDER BY key LIMIT ?5;"},
  };
  for (auto& [stmt, sql] : statements) {
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "cannot prepare a statement");
  }
  return absl::OkStatus();
}

absl::Status HeadStore::PutLocked(std::string_view table, std::string_view key,
                                  std::string_view value) {
  StatementScope scope(put_);
  BindText(put_, 1, table);
  BindBytes(put_, 2, key);
  BindBytes(put_, 3, value);
  const int rc = sqlite3_step(put_);
  if (rc != SQLITE_DONE) return Error(rc, "cannot write to the head database");
  return absl::OkStatus();
}

absl::StatusOr<bool> HeadStore::DeleteLocked(std::string_view table, std::string_view key) {
  StatementScope scope(delete_);
  BindText(delete_, 1, table);
  BindBytes(delete_, 2, key);
  const int rc = sqlite3_step(delete_);
  if (rc != SQLITE_DONE) return Error(rc, "cannot delete from the head database");
  return sqlite3_changes(db_) > 0;
}

absl::Status HeadStore::Put(std::string_view table, std::string_view key, std::string_view value) {
  absl::MutexLock lock(&mu_);
  return PutLocked(table, key, value);
}

absl::StatusOr<bool> HeadStore::Delete(std::string_view table, std::string_view key) {
  absl::MutexLock lock(&mu_);
  return DeleteLocked(table, key);
}

absl::Status HeadStore::Write(const std::vector<Mutation>& batch) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = Exec("BEGIN IMMEDIATE;"); !status.ok()) return status;
  absl::Status status;
  for (const Mutation& mutation : batch) {
    if (mutation.value.has_value()) {
      status = PutLocked(mutation.table, mutation.key, *mutation.value);
    } else {
      status = DeleteLocked(mutation.table, mutation.key).status();
    }
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    (void)Exec("ROLLBACK;");
    return status;
  }
  return Exec("COMMIT;");
}

absl::StatusOr<std::optional<std::string>> HeadStore::Get(std::string_view table,
                                                          std::string_view key) {
  absl::MutexLock lock(&mu_);
  StatementScope scope(get_);
  BindText(get_, 1, table);
  BindBytes(get_, 2, key);
  const int rc = sqlite3_step(get_);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return Error(rc, "cannot read the head database");
  return ColumnBytes(get_, 0);
}

absl::Status HeadStore::ScanLocked(std::string_view table, std::string_view prefix,
                                   std::string_view start_after, size_t limit, bool with_values,
                                   std::vector<Record>* out) {
  const std::optional<std::string> end = PrefixEnd(prefix);
  sqlite3_stmt* stmt = end.has_value() ? scan_ : scan_open_;
  StatementScope scope(stmt);
  BindText(stmt, 1, table);
  BindBytes(stmt, 2, prefix);
  BindBytes(stmt, 3, start_after);
  if (end.has_value()) BindBytes(stmt, 4, *end);
  sqlite3_bind_int64(stmt, 5, limit == 0 ? -1 : static_cast<sqlite3_int64>(limit));
  while (true) {
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return Error(rc, "cannot scan the head database");
    Record record;
    record.key = ColumnBytes(stmt, 0);
    if (with_values) record.value = ColumnBytes(stmt, 1);
    out->push_back(std::move(record));
  }
}

absl::StatusOr<std::vector<HeadStore::Record>> HeadStore::Scan(std::string_view table,
                                                               std::string_view prefix,
                                                               std::string_view start_after,
                                                               size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<Record> out;
  if (absl::Status status = ScanLocked(table, prefix, start_after, limit, true, &out);
      !status.ok()) {
    return status;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> HeadStore::ScanKeys(std::string_view table,
                                                             std::string_view prefix,
                                                             std::string_view start_after,
                                                             size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<Record> records;
  if (absl::Status status = ScanLocked(table, prefix, start_after, limit, false, &records);
      !status.ok()) {
    return status;
  }
  std::vector<std::string> keys;
  keys.reserve(records.size());
  for (Record& record : records) keys.push_back(std::move(record.key));
  return keys;
}

std::string HeadStore::KvTable(std::string_view ns) { return absl::StrCat("kv/", std::string(ns)); }

}  // namespace lumen::scheduler
