#include "model/policy.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/torch_errors.h"

namespace bpo::model {

absl::StatusOr<LoadOptions> ParseLoadOptions(const std::string& dtype, const std::string& device) {
  LoadOptions o;
  if (dtype == "float32" || dtype == "fp32") {
    o.dtype = at::kFloat;
  } else if (dtype == "bfloat16" || dtype == "bf16") {
    o.dtype = at::kBFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype '", dtype, "': expected float32 or bfloat16"));
  }
  int ordinal = 0;
  if (device == "cpu") {
    o.device = at::kCPU;
  } else if (device == "cuda" ||
             (absl::StartsWith(device, "cuda:") && absl::SimpleAtoi(device.substr(5), &ordinal))) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device '", device, "': this LibTorch has no CUDA device"));
    }
    o.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(ordinal));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "': expected cpu, cuda or cuda:N"));
  }
  return o;
}

static absl::StatusOr<Policy> LoadPolicyUnguarded(const std::string& dir,
                                                  const PolicyOptions& options) {
  Policy p;
  auto model = CausalLm::Load(dir, options.load);
  if (!model.ok()) return model.status();
  p.model = std::move(*model);
  auto tok = Tokenizer::Load(options.tokenizer.empty() ? dir : options.tokenizer);
  if (!tok.ok()) return tok.status();
  p.tokenizer = std::move(*tok);
  if (p.tokenizer->vocab_size() > p.model->config().vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(p.tokenizer->path(), ": ", p.tokenizer->vocab_size(),
                     " pieces do not fit the ", p.model->config().vocab_size,
                     "-token embedding of ", dir, "/config.json (mismatched tokenizer?)"));
  }
  if (!options.adapters.empty()) {
    auto lora = LoraEnsemble::LoadPeft(*p.model, options.adapters);
    if (!lora.ok()) return lora.status();
    p.lora = std::move(*lora);
    p.merged = std::make_unique<MergedLora>(p.lora->Merge(options.merge_mode));
  }
  return p;
}

absl::StatusOr<Policy> LoadPolicy(const std::string& dir, const PolicyOptions& options) {
  return CatchTorchErrors(absl::StrCat("loading ", dir),
                          [&] { return LoadPolicyUnguarded(dir, options); });
}

}  // namespace bpo::model
