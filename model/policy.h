// A policy as users point bpo at it: a Hugging Face causal-LM directory, its
// tokenizer, and optionally LoRA adapters in PEFT format (one directory = one
// adapter; several = an ensemble, merged for sampling).
#ifndef BPO_MODEL_POLICY_H_
#define BPO_MODEL_POLICY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/lora.h"
#include "model/tokenizer.h"

namespace bpo::model {

struct PolicyOptions {
  LoadOptions load;
  std::vector<std::string> adapters;  // PEFT adapter directories
  MergeMode merge_mode = MergeMode::kPeftLinear;
  std::string tokenizer;  // empty: the model directory's
};

struct Policy {
  std::unique_ptr<CausalLm> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<LoraEnsemble> lora;  // null without adapters
  std::unique_ptr<MergedLora> merged;  // the adapter to run with, or null

  const LinearAdapter* adapter() const { return merged.get(); }
};

// Loads and cross-checks everything (a tokenizer whose vocabulary does not fit
// the model's embedding is an error naming both files).
absl::StatusOr<Policy> LoadPolicy(const std::string& dir, const PolicyOptions& options);

// "float32"/"bfloat16" and "cpu"/"cuda[:N]" as flags and configs spell them.
absl::StatusOr<LoadOptions> ParseLoadOptions(const std::string& dtype, const std::string& device);

// The device this process runs its model on for model.device = `configured`.
// "cpu" and "cuda:N" stay as they are. "cuda" picks one GPU of this host for
// this process, from the first of these environment variables that is set:
//   BPO_CUDA_DEVICE  an ordinal (`bpo local` and the deploy scripts set it for
//                    each process: learner rank r on GPU r, workers after them);
//   LOCAL_RANK       the process's index on its host (torchrun, Kubernetes);
//   SLURM_LOCALID    the task's index on its node (srun);
// the last two modulo the number of visible GPUs; with none set, cuda:0.
// CUDA_VISIBLE_DEVICES applies first, as always. An unparsable or
// out-of-range BPO_CUDA_DEVICE is an error naming the variable.
absl::StatusOr<std::string> ResolveProcessDevice(const std::string& configured);

// ParseLoadOptions on the device ResolveProcessDevice picks for this process.
absl::StatusOr<LoadOptions> ProcessLoadOptions(const std::string& dtype,
                                               const std::string& configured_device);

// The same, with the environment and the GPU count given (for tests).
absl::StatusOr<std::string> ResolveProcessDevice(
    const std::string& configured, const std::function<const char*(const char*)>& getenv,
    int visible_gpus);

}  // namespace bpo::model

#endif  // BPO_MODEL_POLICY_H_
