// A small RAII layer over SQLite's C API: a connection, prepared statements
// with positional binding, and transactions. Errors come back as absl::Status
// naming the database file and SQLite's message. Not thread-safe: the owner
// serialises access (the coordinator holds one connection under its mutex).
#ifndef BPO_COORDINATOR_SQLITE_H_
#define BPO_COORDINATOR_SQLITE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace bpo::coordinator {

class Statement;

class Database {
 public:
  struct Options {
    // WAL journal, foreign keys on, busy timeout; synchronous=FULL when
    // fsync (a commit survives power loss), NORMAL otherwise (it survives a
    // killed process).
    bool fsync = true;
  };
  // Creates the file (and not its directory) when missing.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path, Options options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without results.
  absl::Status Exec(absl::string_view sql);
  // Compiled once per distinct SQL text and reused (reset on each call).
  absl::StatusOr<Statement*> Prepare(const std::string& sql);

  // BEGIN IMMEDIATE / COMMIT / ROLLBACK.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();

  int64_t Changes() const;
  const std::string& path() const { return path_; }
  absl::Status Error(absl::string_view what) const;

 private:
  Database(sqlite3* db, std::string path);
  sqlite3* db_;
  std::string path_;
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

// A prepared statement. Bind with 1-based indices, then Step() until it
// returns false (no more rows) or Run() for statements without rows.
class Statement {
 public:
  Statement(Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Reset();
  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, absl::string_view text);
  Statement& BindBlob(int i, absl::string_view bytes);
  Statement& BindNull(int i);
  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion.
  absl::Status Run();

  int64_t Int(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_;
};

// Runs `body` in BEGIN IMMEDIATE ... COMMIT; rolls back when `body` or the
// COMMIT fails (a failed COMMIT, e.g. SQLITE_FULL or a deferred constraint,
// leaves the transaction open: without the rollback every later BEGIN would
// fail).
template <typename F>
absl::Status InTransaction(Database* db, F&& body) {
  if (absl::Status s = db->Begin(); !s.ok()) return s;
  absl::Status s = body();
  if (s.ok()) s = db->Commit();
  if (!s.ok()) db->Rollback();
  return s;
}

}  // namespace bpo::coordinator

#endif  // BPO_COORDINATOR_SQLITE_H_
