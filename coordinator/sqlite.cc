#include "coordinator/sqlite.h"

#include <sqlite3.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace bpo::coordinator {

struct Database::Cache {
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> statements;
};

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, Options options) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return absl::UnavailableError(absl::StrCat(path, ": cannot open the store: ", message));
  }
  std::unique_ptr<Database> db(new Database(raw, path));
  db->cache_ = std::make_unique<Cache>();
  sqlite3_busy_timeout(raw, 10000);
  if (absl::Status s = db->Exec(absl::StrCat(
          "PRAGMA journal_mode=WAL; PRAGMA synchronous=", options.fsync ? "FULL" : "NORMAL",
          "; PRAGMA foreign_keys=ON;"));
      !s.ok()) {
    return s;
  }
  return db;
}

Database::Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

Database::~Database() {
  cache_.reset();  // finalize statements before closing
  sqlite3_close(db_);
}

absl::Status Database::Error(absl::string_view what) const {
  const int code = sqlite3_errcode(db_);
  std::string message = absl::StrCat(path_, ": ", what, ": ", sqlite3_errmsg(db_));
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return absl::DataLossError(message);
  if (code == SQLITE_FULL || code == SQLITE_IOERR) return absl::ResourceExhaustedError(message);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

absl::Status Database::Exec(absl::string_view sql) {
  char* err = nullptr;
  const std::string text(sql.data(), sql.size());
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = Error(text.substr(0, 60));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement*> Database::Prepare(const std::string& sql) {
  auto it = cache_->statements.find(sql);
  if (it != cache_->statements.end()) return &it->second->Reset();
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return Error(absl::StrCat("prepare '", sql.substr(0, 80), "'"));
  }
  auto owned = std::make_unique<Statement>(this, stmt);
  Statement* out = owned.get();
  cache_->statements.emplace(sql, std::move(owned));
  return out;
}

absl::Status Database::Begin() { return Exec("BEGIN IMMEDIATE"); }
absl::Status Database::Commit() { return Exec("COMMIT"); }
void Database::Rollback() { (void)Exec("ROLLBACK"); }
int64_t Database::Changes() const { return sqlite3_changes(db_); }

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}
Statement& Statement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Statement& Statement::Bind(int i, absl::string_view text) {
  sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindBlob(int i, absl::string_view bytes) {
  sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status s =
      db_->Error(absl::StrCat("step '", std::string(sqlite3_sql(stmt_)).substr(0, 80), "'"));
  sqlite3_reset(stmt_);
  return s;
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
std::string Statement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}
bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

}  // namespace bpo::coordinator
