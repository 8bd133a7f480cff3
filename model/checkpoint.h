// The tensors of a Hugging Face model directory: `model.safetensors`, or the
// shards listed in `model.safetensors.index.json`. Loaders take tensors by
// name and report any that were never taken (a config/tensor mismatch).
#ifndef BPO_MODEL_CHECKPOINT_H_
#define BPO_MODEL_CHECKPOINT_H_

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/safetensors.h"

namespace bpo::model {

class Checkpoint {
 public:
  // NOT_FOUND when the directory has neither file; errors of any shard name it.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  bool Contains(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> Names() const;
  // The file a tensor lives in (for messages).
  std::string FileOf(const std::string& name) const;
  // Header entry (dtype, shape) of a tensor, or nullptr.
  const TensorInfo* Info(const std::string& name) const;

  // Takes tensor `name` converted to `options` (dtype, device), checking its
  // shape. INVALID_ARGUMENT/NOT_FOUND name the file and the tensor.
  absl::StatusOr<at::Tensor> Take(const std::string& name, at::IntArrayRef shape,
                                  const at::TensorOptions& options);
  // Names never taken, except those matching `ignored` substrings.
  std::vector<std::string> Untaken(const std::vector<std::string>& ignored = {}) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, SafetensorsFile*> where_;
  std::set<std::string> taken_;
};

}  // namespace bpo::model

#endif  // BPO_MODEL_CHECKPOINT_H_
