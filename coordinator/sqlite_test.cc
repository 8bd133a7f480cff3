#include "coordinator/sqlite.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace bpo::coordinator {
namespace {

namespace fs = std::filesystem;

TEST(SqliteTest, AFailedCommitIsRolledBackAndTheNextTransactionWorks) {
  const fs::path dir = fs::path(::testing::TempDir()) / "sqlite_failed_commit";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto db = Database::Open((dir / "t.db").string(), {.fsync = false});
  ASSERT_TRUE(db.ok()) << db.status();
  // A deferred foreign key is checked at COMMIT: the COMMIT itself fails.
  ASSERT_TRUE((*db)
                  ->Exec("CREATE TABLE parent(id INTEGER PRIMARY KEY);"
                         "CREATE TABLE child(pid INTEGER REFERENCES parent(id) "
                         "DEFERRABLE INITIALLY DEFERRED);")
                  .ok());
  absl::Status failed = InTransaction(db->get(), [&] {
    return (*db)->Exec("INSERT INTO child(pid) VALUES(7)");  // no parent 7
  });
  EXPECT_FALSE(failed.ok());
  // Nothing of it stays, and the database takes the next transaction.
  absl::Status next = InTransaction(db->get(), [&] {
    return (*db)->Exec("INSERT INTO parent(id) VALUES(7); INSERT INTO child(pid) VALUES(7);");
  });
  ASSERT_TRUE(next.ok()) << next;
  auto count = (*db)->Prepare("SELECT COUNT(*) FROM child");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*(*count)->Step());
  EXPECT_EQ((*count)->Int(0), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bpo::coordinator
