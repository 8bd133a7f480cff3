#include "common/address_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_addr_", name, "_", getpid());
  fs::remove_all(dir);
  return dir.string();
}

TEST(AddressFileTest, AServerWritesWhatItBoundAndAClientResolvesIt) {
  const std::string dir = FreshDir("resolve");
  const std::string path = dir + "/addresses/coordinator.json";
  const std::string endpoint = "file:" + path;
  EXPECT_TRUE(IsFileEndpoint(endpoint));
  EXPECT_EQ(FileEndpointPath(endpoint), path);
  // Not written yet: "not yet", which clients retry.
  absl::StatusOr<std::string> early = ResolveEndpoint(endpoint);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(early.status().message()), HasSubstr("does not exist yet"));

  ASSERT_TRUE(WriteAddressFile(path, {{"grpc", "127.0.0.1:41234"}}).ok());
  EXPECT_EQ(*ResolveEndpoint(endpoint), "127.0.0.1:41234");
  EXPECT_EQ(ResolveEndpoint(endpoint, "metrics").status().code(), absl::StatusCode::kUnavailable);
  // A restart replaces it.
  ASSERT_TRUE(
      WriteAddressFile(path, {{"grpc", "127.0.0.1:40000"}, {"metrics", "127.0.0.1:40001"}}).ok());
  EXPECT_EQ(*ResolveEndpoint(endpoint), "127.0.0.1:40000");
  EXPECT_EQ(*ResolveEndpoint(endpoint, "metrics"), "127.0.0.1:40001");
  EXPECT_EQ(ReadAddressFile(path)->size(), 2u);  // the pid is not an address
  // Plain endpoints are themselves.
  EXPECT_FALSE(IsFileEndpoint("127.0.0.1:5"));
  EXPECT_EQ(*ResolveEndpoint("127.0.0.1:5"), "127.0.0.1:5");
  fs::remove_all(dir);
}

TEST(AddressFileTest, AFileThatIsNotAnAddressFileIsAClearError) {
  const std::string dir = FreshDir("bad");
  fs::create_directories(dir);
  std::ofstream(dir + "/a.json") << "not json";
  EXPECT_EQ(ResolveEndpoint("file:" + dir + "/a.json").status(),
            absl::InvalidArgumentError(
                absl::StrCat("address file ", dir, "/a.json: not a JSON object of addresses")));
  std::ofstream(dir + "/b.json") << "{\"grpc\": 5}";
  EXPECT_EQ(ReadAddressFile(dir + "/b.json").status(),
            absl::InvalidArgumentError(
                absl::StrCat("address file ", dir, "/b.json: entry 'grpc' is not a string")));
  EXPECT_EQ(ResolveEndpoint("file:").status().code(), absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(AddressFileTest, PublishedAddressesNameAHostOthersCanDial) {
  EXPECT_EQ(PublishedAddress("127.0.0.1:0", 4242), "127.0.0.1:4242");
  EXPECT_EQ(PublishedAddress("[::1]:0", 80), "[::1]:80");
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(PublishedAddress("0.0.0.0:0", 7), absl::StrCat(host, ":7"));
  EXPECT_EQ(PublishedAddress(":0", 7), absl::StrCat(host, ":7"));
}

}  // namespace
}  // namespace bpo
