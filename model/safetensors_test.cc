#include "model/safetensors.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("bpo_st_", getpid());
  fs::create_directories(dir);
  return (dir / name).string();
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

// A file from a literal JSON header and `data_bytes` zero bytes of data.
std::vector<uint8_t> Handmade(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

absl::Status ParseStatus(const std::vector<uint8_t>& bytes) {
  return ParseSafetensors(absl::MakeConstSpan(bytes), "f.safetensors").status();
}

TEST(SafetensorsTest, RoundTripsEveryDtypeBitwise) {
  at::manual_seed(3);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 5})},
      {"bf16", at::randn({4, 2}).to(at::kBFloat16)},
      {"f16", at::randn({7}).to(at::kHalf)},
      {"f64", at::randn({2, 2}, at::kDouble)},
      {"i64", at::arange(10, at::kLong).reshape({2, 5})},
      {"i32", at::arange(3, at::kInt)},
      {"u8", at::arange(5, at::kByte)},
      {"bool", at::arange(3, at::kLong).remainder(2).to(at::kBool)},
      {"scalar", at::tensor(2.5f)},
      {"empty", at::empty({0, 4})},
      {"strided", at::randn({4, 6}).t()},  // written contiguous
  };
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->header().metadata.at("format"), "pt");
  EXPECT_EQ((*file)->header().data_offset % 8, 0u);
  for (const auto& [name, expected] : tensors) {
    auto got = (*file)->Tensor(name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got->sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(*got, expected.contiguous())) << name;
  }
  EXPECT_EQ((*file)->header().Find("bf16")->dtype, DType::kBF16);
  EXPECT_EQ((*file)->Tensor("nope").status(), absl::NotFoundError(path + ": no tensor 'nope'"));
}

TEST(SafetensorsTest, TensorsOutliveTheFileAndWritesNeverReachIt) {
  const std::string path = TempPath("cow.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", at::ones({64})}}).ok());
  at::Tensor w;
  {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok());
    w = *(*file)->Tensor("w");
  }  // the file object is gone; the mapping stays while `w` lives
  w.mul_(3);
  EXPECT_EQ(w.sum().item<float>(), 192);
  auto again = SafetensorsFile::Open(path);
  EXPECT_EQ((*(*again)->Tensor("w")).sum().item<float>(), 64);
}

TEST(SafetensorsTest, ReadsFilesWithUnalignedData) {
  // A 6-byte header puts the data at offset 14: F32 data is copied, not aliased.
  auto bytes = Handmade(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 0);
  const float v = 1.5f;
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  bytes.insert(bytes.end(), p, p + 4);
  const std::string path = TempPath("unaligned.safetensors");
  WriteBytes(path, bytes);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*(*file)->Tensor("x")).item<float>(), 1.5f);
}

TEST(SafetensorsTest, RejectsCorruptFilesWithClearErrors) {
  const std::string entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  struct Case {
    std::vector<uint8_t> bytes;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<uint8_t> huge_len = Handmade("{}", 0);
  huge_len[7] = 0x7f;
  std::vector<uint8_t> past_end = Handmade("{}", 0);
  past_end[0] = 200;
  const std::vector<Case> cases = {
      {{1, 2, 3},
       absl::StatusCode::kDataLoss,
       "f.safetensors: 3 bytes is too short for a safetensors file"},
      {huge_len, absl::StatusCode::kInvalidArgument,
       "f.safetensors: header length 9151314442816847874 exceeds the limit of 104857600 bytes"},
      {past_end, absl::StatusCode::kDataLoss,
       "f.safetensors: header length 200 runs past the end of the 10-byte file (truncated?)"},
      {Handmade("{\"x\":", 0), absl::StatusCode::kInvalidArgument,
       "f.safetensors: header is not valid JSON"},
      {Handmade("[1,2]", 0), absl::StatusCode::kInvalidArgument,
       "f.safetensors: header is not a JSON object"},
      {Handmade("{\"a\":{" + entry + "},\"a\":{" + entry + "}}", 8),
       absl::StatusCode::kInvalidArgument, "f.safetensors: tensor 'a' appears twice in the header"},
      {Handmade(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2),
       absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'a': unsupported dtype 'F8_E4M3'"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
       absl::StatusCode::kInvalidArgument, "f.safetensors: tensor 'a': bad dimension -2"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       absl::StatusCode::kInvalidArgument, "f.safetensors: tensor 'a': shape is too large"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
       absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'a': data_offsets [8, 0] end before they begin"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[2]}})", 8), absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'a': data_offsets must be [begin, end]"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8),
       absl::StatusCode::kInvalidArgument, "f.safetensors: tensor 'a': unknown field 'x'"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12),
       absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'b': bytes [4, 12) overlap the previous tensor, which ends at 8"},
      {Handmade(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                20),
       absl::StatusCode::kInvalidArgument,
       "f.safetensors: tensor 'b': starts at byte 12 but the previous tensor ends at 8 (holes "
       "are not allowed)"},
      {Handmade("{\"a\":{" + entry + "}}", 4), absl::StatusCode::kDataLoss,
       "f.safetensors: tensor 'a': bytes [0, 8) run past the 4-byte data section (truncated?)"},
      {Handmade("{\"a\":{" + entry + "}}", 12), absl::StatusCode::kInvalidArgument,
       "f.safetensors: the data section has 12 bytes but the tensors cover 8"},
      {Handmade(R"({"__metadata__":{"k":1}})", 0), absl::StatusCode::kInvalidArgument,
       "f.safetensors: __metadata__ value of 'k' is not a string"},
  };
  for (const Case& c : cases) {
    const absl::Status s = ParseStatus(c.bytes);
    EXPECT_EQ(s.code(), c.code) << c.message << "\n got: " << s;
    EXPECT_EQ(s.message(), c.message);
  }
  EXPECT_TRUE(ParseStatus(Handmade("{\"a\":{" + entry + "}}", 8)).ok());
  EXPECT_TRUE(ParseStatus(Handmade("{}", 0)).ok());
}

TEST(SafetensorsTest, OpenNamesTheFile) {
  auto missing = SafetensorsFile::Open("/nonexistent/model.safetensors");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "/nonexistent/model.safetensors: cannot open: No such file or directory");
  const std::string path = TempPath("truncated.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", at::ones({16})}}).ok());
  auto bytes = ReadBytes(path);
  bytes.resize(bytes.size() - 5);
  WriteBytes(path, bytes);
  auto truncated = SafetensorsFile::Open(path);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(truncated.status().message()),
              HasSubstr(path + ": tensor 'w': bytes [0, 64) run past the 59-byte data section"));
}

// Random corruption of a valid file: every result is OK or a clean error,
// and an OK header only points inside the bytes (ASan builds check reads).
TEST(SafetensorsTest, SurvivesRandomCorruption) {
  const std::string path = TempPath("fuzz.safetensors");
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"a", at::ones({3, 4})},
                                {"b", at::zeros({5}, at::kBFloat16)},
                                {"c", at::arange(4, at::kLong)}},
                               {{"format", "pt"}})
                  .ok());
  const std::vector<uint8_t> valid = ReadBytes(path);
  std::mt19937 rng(1234);
  int ok = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:  // flip a byte
          bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
          break;
        case 1:  // truncate
          bytes.resize(rng() % (bytes.size() + 1));
          break;
        case 2:  // change a digit in the header
          for (size_t i = 8 + rng() % 64; i < std::min<size_t>(bytes.size(), 200); ++i) {
            if (bytes[i] >= '0' && bytes[i] <= '9') {
              bytes[i] = static_cast<uint8_t>('0' + rng() % 10);
              break;
            }
          }
          break;
        default:  // grow
          bytes.push_back(static_cast<uint8_t>(rng()));
      }
      if (bytes.empty()) break;
    }
    auto header = ParseSafetensors(absl::MakeConstSpan(bytes), "fuzz");
    if (header.ok()) {
      ++ok;
      for (const TensorInfo& t : header->tensors) {
        ASSERT_LE(header->data_offset + t.end, bytes.size());
      }
    } else {
      EXPECT_THAT(std::string(header.status().message()), ::testing::StartsWith("fuzz: "));
    }
  }
  EXPECT_LT(ok, 5000);
}

}  // namespace
}  // namespace bpo::model
