#include "model/policy.h"

#include <cstdlib>

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

absl::StatusOr<std::string> ResolveProcessDevice(
    const std::string& configured, const std::function<const char*(const char*)>& getenv,
    int visible_gpus) {
  if (configured != "cuda") return configured;
  if (const char* explicit_device = getenv("BPO_CUDA_DEVICE"); explicit_device != nullptr) {
    int ordinal = -1;
    if (!absl::SimpleAtoi(explicit_device, &ordinal) || ordinal < 0) {
      return absl::InvalidArgumentError(absl::StrCat("BPO_CUDA_DEVICE='", explicit_device,
                                                     "': expected a GPU ordinal (0, 1, ...)"));
    }
    if (visible_gpus > 0 && ordinal >= visible_gpus) {
      return absl::InvalidArgumentError(absl::StrCat("BPO_CUDA_DEVICE=", ordinal, " but only ",
                                                     visible_gpus, " GPU(s) are visible"));
    }
    return absl::StrCat("cuda:", ordinal);
  }
  for (const char* name : {"LOCAL_RANK", "SLURM_LOCALID"}) {
    const char* value = getenv(name);
    int index = -1;
    if (value == nullptr || !absl::SimpleAtoi(value, &index) || index < 0) continue;
    return absl::StrCat("cuda:", visible_gpus > 0 ? index % visible_gpus : index);
  }
  return std::string("cuda:0");
}

absl::StatusOr<std::string> ResolveProcessDevice(const std::string& configured) {
  return ResolveProcessDevice(
      configured, [](const char* name) { return std::getenv(name); },
      configured == "cuda" && at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0);
}

absl::StatusOr<LoadOptions> ProcessLoadOptions(const std::string& dtype,
                                               const std::string& configured_device) {
  absl::StatusOr<std::string> device = ResolveProcessDevice(configured_device);
  if (!device.ok()) return device.status();
  return ParseLoadOptions(dtype, *device);
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
