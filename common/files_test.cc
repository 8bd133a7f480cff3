#include "common/files.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path TestDir() {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat("files_test_", getpid(), "_",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(FilesTest, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const fs::path dir = TestDir();
  const std::string path = (dir / "f.bin").string();
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  std::string big(3 << 16, '\0');  // several read chunks, with NUL bytes
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(WriteFileAtomically(path, big).ok());
  auto back = ReadWholeFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, big);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1);
}

TEST(FilesTest, ErrorsNameThePath) {
  const fs::path dir = TestDir();
  auto missing = ReadWholeFile((dir / "nope").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr((dir / "nope").string()));
  const absl::Status no_dir = WriteFileAtomically((dir / "no" / "such" / "f").string(), "x");
  EXPECT_FALSE(no_dir.ok());
  EXPECT_THAT(no_dir.message(), HasSubstr((dir / "no" / "such" / "f").string()));
}

}  // namespace
}  // namespace bpo
