#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace bpo {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LogPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / absl::StrCat("bpo_subprocess_", getpid(), "_", name))
      .string();
}

TEST(SubprocessTest, ExitCodeAndBothStreamsInTheLog) {
  const std::string log = LogPath("plain");
  auto code = RunToLog("/bin/sh", {"sh", "-c", "echo out; echo err >&2; exit 3"}, log);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 3);
  EXPECT_EQ(ReadAll(log), "out\nerr\n");
  std::filesystem::remove(log);
}

TEST(SubprocessTest, OutputPassesThroughTheCallbackAndTheLog) {
  const std::string log = LogPath("tee");
  std::string seen;
  auto code = RunToLog("/bin/sh", {"sh", "-c", "echo one; echo two >&2"}, log,
                       [&](std::string_view chunk) { seen.append(chunk); });
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(seen, "one\ntwo\n");
  EXPECT_EQ(ReadAll(log), "one\ntwo\n");
  std::filesystem::remove(log);
}

TEST(SubprocessTest, MissingProgramAndSignals) {
  const std::string log = LogPath("bad");
  auto missing = RunToLog("/nonexistent/program", {"program"}, log);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(*missing, 127);
  auto killed = RunToLog("/bin/sh", {"sh", "-c", "kill -9 $$"}, log);
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(*killed, 128 + 9);
  std::filesystem::remove(log);
}

}  // namespace
}  // namespace bpo
