// Test-only helpers shared by the model tests that read the committed HF
// fixtures (tests/fixtures/<name>/reference.safetensors): the parity tests
// and the CUDA tests. Needs BPO_SOURCE_DIR, which bpo_test defines.
#ifndef BPO_MODEL_FIXTURE_TESTING_H_
#define BPO_MODEL_FIXTURE_TESTING_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/safetensors.h"

namespace bpo::model::fixtures {

inline std::string FixtureDir(const std::string& name) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", name);
}

// A fixture's reference.safetensors: the tests' inputs and HF's outputs.
// Failures to read are test failures; a missing tensor reads as undefined.
class Reference {
 public:
  explicit Reference(const std::string& name) {
    auto file = SafetensorsFile::Open(FixtureDir(name) + "/reference.safetensors");
    EXPECT_TRUE(file.ok()) << file.status();
    if (file.ok()) file_ = std::move(*file);
  }
  at::Tensor operator[](const std::string& name) const {
    auto t = file_->Tensor(name);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->clone() : at::Tensor();
  }
  bool ok() const { return file_ != nullptr; }

 private:
  std::unique_ptr<SafetensorsFile> file_;
};

// max |a - b| over positions where mask != 0, divided by max |b| there;
// compared on the CPU in float32, whatever the tensors' devices and dtypes.
inline double RelativeError(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor m = mask.cpu().to(at::kBool);
  const at::Tensor da = a.detach().cpu().to(at::kFloat).index({m});
  const at::Tensor db = b.detach().cpu().to(at::kFloat).index({m});
  return (da - db).abs().max().item<double>() / db.abs().max().item<double>();
}

// The same over every position.
inline double RelativeError(const at::Tensor& a, const at::Tensor& b) {
  return RelativeError(a, b, at::ones(b.sizes(), at::kBool));
}

}  // namespace bpo::model::fixtures

#endif  // BPO_MODEL_FIXTURE_TESTING_H_
