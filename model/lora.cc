#include "model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/json_reader.h"
#include "model/lora_targets.h"
#include "model/safetensors.h"

namespace bpo::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// target_modules for an adapter of `targets`: short names unless only some
// layers of a kind are adapted.
std::vector<std::string> ModuleNames(const std::vector<LoraTarget>& targets, int64_t num_layers) {
  std::vector<bool> mask(num_layers * kNumLinearKinds, false);
  for (const auto& t : targets) mask[t.layer * kNumLinearKinds + static_cast<int>(t.kind)] = true;
  return LoraTargetModuleNames(mask, num_layers);
}

absl::Status WriteAdapter(const std::string& dir, const std::string& config,
                          const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  const std::string tmp = dir + "/adapter_config.json.tmp";
  {
    std::ofstream out(tmp);
    out << config << "\n";
    if (!out) return absl::InternalError(absl::StrCat(tmp, ": write failed"));
  }
  fs::rename(tmp, dir + "/adapter_config.json", ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, "/adapter_config.json: ", ec.message()));
  return WriteSafetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace

std::string PeftKey(int64_t layer, LinearKind kind, const char* ab) {
  return absl::StrCat("base_model.model.model.layers.", layer, ".", LinearParent(kind), ".",
                      LinearName(kind), ".lora_", ab, ".weight");
}

std::string PeftAdapterConfigJson(int64_t rank, double alpha, double dropout,
                                  const std::vector<std::string>& modules,
                                  const std::string& base_model) {
  return json{{"peft_type", "LORA"},
              {"task_type", "CAUSAL_LM"},
              {"r", rank},
              {"lora_alpha", alpha},
              {"lora_dropout", dropout},
              {"target_modules", modules},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"use_rslora", false},
              {"use_dora", false},
              {"modules_to_save", nullptr},
              {"layers_to_transform", nullptr},
              {"rank_pattern", json::object()},
              {"alpha_pattern", json::object()},
              {"base_model_name_or_path", base_model.empty() ? json(nullptr) : json(base_model)}}
      .dump(2);
}

const char* MergeModeName(MergeMode mode) {
  return mode == MergeMode::kMeanDelta ? "mean_delta" : "peft_linear";
}

at::Tensor LoraMember::Delta(int64_t layer, LinearKind kind, const at::Tensor& x) const {
  const int slot = ensemble_->Slot(layer, kind);
  if (slot < 0) return {};
  const double p = ensemble_->options_.dropout;
  const at::Tensor& a = ensemble_->a_[index_][slot];
  // fp32 factors on a bf16 model: the input is cast up, as PEFT does; the
  // caller rounds base output + delta back to the model's dtype.
  const at::Tensor xa = x.scalar_type() == a.scalar_type() ? x : x.to(a.scalar_type());
  const at::Tensor in = training_ && p > 0 ? at::dropout(xa, p, /*train=*/true) : xa;
  return at::linear(at::linear(in, a), ensemble_->b_[index_][slot]) * ensemble_->scaling();
}

at::Tensor MergedLora::Delta(int64_t layer, LinearKind kind, const at::Tensor& x) const {
  const int slot = slot_[layer * kNumLinearKinds + static_cast<int>(kind)];
  if (slot < 0) return {};
  const at::Tensor& a = a_[slot];
  return at::linear(at::linear(x.scalar_type() == a.scalar_type() ? x : x.to(a.scalar_type()), a),
                    b_[slot]);
}

MergedLora MergedLora::FromTensors(std::vector<int> slots, std::vector<at::Tensor> a,
                                   std::vector<at::Tensor> b) {
  MergedLora m;
  m.slot_ = std::move(slots);
  m.a_ = std::move(a);
  m.b_ = std::move(b);
  return m;
}

int LoraEnsemble::Slot(int64_t layer, LinearKind kind) const {
  return slot_[layer * kNumLinearKinds + static_cast<int>(kind)];
}

absl::Status LoraEnsemble::InitTargets(const CausalLm& model) {
  const auto& c = model.config();
  auto mask =
      SelectLoraTargets({options_.target_modules, options_.target_pattern}, c.arch, c.num_layers);
  if (!mask.ok()) return mask.status();
  slot_.assign(c.num_layers * kNumLinearKinds, -1);
  targets_.clear();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (int k = 0; k < kNumLinearKinds; ++k) {
      if (!(*mask)[l * kNumLinearKinds + k]) continue;
      const at::Tensor& w = model.layer(l).linear[k].weight;
      slot_[l * kNumLinearKinds + k] = static_cast<int>(targets_.size());
      targets_.push_back({l, static_cast<LinearKind>(k), w.size(1), w.size(0)});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoraEnsemble>> LoraEnsemble::Create(const CausalLm& model,
                                                                   const LoraOptions& options) {
  if (options.members < 1 || options.rank < 1 || !(options.alpha > 0) ||
      !(options.dropout >= 0 && options.dropout < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LoRA: need members >= 1, rank >= 1, alpha > 0, 0 <= dropout < 1; got ", options.members,
        ", ", options.rank, ", ", options.alpha, ", ", options.dropout));
  }
  std::unique_ptr<LoraEnsemble> e(new LoraEnsemble());
  e->options_ = options;
  if (auto s = e->InitTargets(model); !s.ok()) return s;
  // The factors are trained in fp32 whatever the model's dtype, on its device:
  // PEFT's default (autocast_adapter_dtype) for bf16 and fp16 models. bf16
  // moments could not follow AdamW's updates (0.999 * v rounds back to v).
  const auto opts = model.options().dtype(at::kFloat);
  for (int i = 0; i < options.members; ++i) {
    at::Generator gen = at::detail::createCPUGenerator(options.seed + static_cast<uint64_t>(i));
    std::vector<at::Tensor> a, b;
    for (const LoraTarget& t : e->targets_) {
      // PEFT: kaiming_uniform_(a=sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      const double bound = 1.0 / std::sqrt(static_cast<double>(t.in));
      a.push_back(at::empty({options.rank, t.in}, at::kFloat)
                      .uniform_(-bound, bound, gen)
                      .to(opts)
                      .set_requires_grad(true));
      b.push_back(at::zeros({t.out, options.rank}, opts).set_requires_grad(true));
    }
    e->a_.push_back(std::move(a));
    e->b_.push_back(std::move(b));
  }
  return e;
}

absl::StatusOr<std::unique_ptr<LoraEnsemble>> LoraEnsemble::LoadPeft(
    const CausalLm& model, const std::vector<std::string>& dirs) {
  if (dirs.empty()) return absl::InvalidArgumentError("LoRA: no adapter directories given");
  std::unique_ptr<LoraEnsemble> e(new LoraEnsemble());
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string cfg_path = dirs[i] + "/adapter_config.json";
    auto text = ReadTextFile(cfg_path);
    if (!text.ok()) return text.status();
    const json j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": not a JSON object"));
    }
    JsonReader r(j, cfg_path);
    if (r.String("peft_type", "LORA") != "LORA") {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path, ": peft_type: only LORA is supported"));
    }
    LoraOptions o;
    o.members = static_cast<int>(dirs.size());
    o.rank = static_cast<int>(r.Int("r"));
    o.alpha = r.Double("lora_alpha", o.rank);
    o.dropout = r.Double("lora_dropout", 0);
    const bool rslora = r.Bool("use_rslora", false), dora = r.Bool("use_dora", false),
               fan = r.Bool("fan_in_fan_out", false);
    const std::string bias = r.String("bias", "none");
    BPO_RETURN_IF_JSON_ERROR(r);
    for (const auto& [key, bad] : {std::pair<const char*, bool>{"use_rslora", rslora},
                                   {"use_dora", dora},
                                   {"fan_in_fan_out", fan},
                                   {"bias", bias != "none"}}) {
      if (bad)
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": ", key, ": not supported"));
    }
    for (const char* key : {"rank_pattern", "alpha_pattern"}) {
      if (j.contains(key) && j[key].is_object() && !j[key].empty()) {
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": ", key, ": not supported"));
      }
    }
    // PEFT 0.18 keys that would change which modules are adapted.
    for (const char* key : {"exclude_modules", "target_parameters"}) {
      if (j.contains(key) && !j[key].is_null() && !(j[key].is_array() && j[key].empty())) {
        return absl::InvalidArgumentError(
            absl::StrCat(cfg_path, ": ", key, ": not supported (got ", j[key].dump(), ")"));
      }
    }
    if (j.contains("layers_to_transform") && !j["layers_to_transform"].is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path, ": layers_to_transform: not supported"));
    }
    // PEFT writes a list of names (short names, or full module names for
    // "all-linear") or one string (a regular expression, or "all-linear").
    const json* modules = j.contains("target_modules") ? &j["target_modules"] : nullptr;
    o.target_modules.clear();
    if (modules != nullptr && modules->is_string()) {
      o.target_pattern = modules->get<std::string>();
    } else if (modules != nullptr && modules->is_array() &&
               std::all_of(modules->begin(), modules->end(),
                           [](const json& m) { return m.is_string(); })) {
      for (const auto& m : *modules) o.target_modules.push_back(m.get<std::string>());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path,
                       ": target_modules: expected a list of module names or one regular "
                       "expression string, got ",
                       modules == nullptr ? "nothing" : modules->dump()));
    }
    if (i == 0) {
      e->options_ = o;
      if (auto s = e->InitTargets(model); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": ", s.message()));
      }
    } else {
      // Members may spell the same targets differently (short or full names).
      LoraEnsemble other;
      other.options_ = o;
      if (auto s = other.InitTargets(model); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": ", s.message()));
      }
      if (o.rank != e->options_.rank || o.alpha != e->options_.alpha || other.slot_ != e->slot_) {
        return absl::InvalidArgumentError(absl::StrCat(
            cfg_path, ": r, lora_alpha and the layers target_modules selects must match ",
            dirs[0]));
      }
    }
    auto file = SafetensorsFile::Open(dirs[i] + "/adapter_model.safetensors");
    if (!file.ok()) return file.status();
    std::vector<at::Tensor> a, b;
    for (const LoraTarget& t : e->targets_) {
      for (const char* ab : {"A", "B"}) {
        const std::string key = PeftKey(t.layer, t.kind, ab);
        auto tensor = (*file)->Tensor(key);
        if (!tensor.ok()) return tensor.status();
        const std::vector<int64_t> want =
            ab[0] == 'A' ? std::vector<int64_t>{o.rank, t.in} : std::vector<int64_t>{t.out, o.rank};
        if (tensor->sizes() != at::IntArrayRef(want)) {
          return absl::InvalidArgumentError(
              absl::StrCat((*file)->path(), ": tensor '", key, "' has shape [",
                           absl::StrJoin(tensor->sizes(), ", "), "], expected [",
                           absl::StrJoin(want, ", "), "]"));
        }
        at::Tensor param =
            tensor->to(model.options().dtype(at::kFloat), false, true).set_requires_grad(true);
        (ab[0] == 'A' ? a : b).push_back(param);
      }
    }
    const size_t expected = 2 * e->targets_.size();
    if ((*file)->header().tensors.size() != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          (*file)->path(), ": has ", (*file)->header().tensors.size(), " tensors, expected ",
          expected, " (lora_A and lora_B of each target module)"));
    }
    e->a_.push_back(std::move(a));
    e->b_.push_back(std::move(b));
  }
  return e;
}

std::vector<at::Tensor> LoraEnsemble::Parameters(int member) const {
  std::vector<at::Tensor> out = a_[member];
  out.insert(out.end(), b_[member].begin(), b_[member].end());
  return out;
}

MergedLora LoraEnsemble::Merge(MergeMode mode) const {
  std::vector<std::vector<at::Tensor>> params;
  for (int i = 0; i < members(); ++i) params.push_back(Parameters(i));
  return MergeParameters(mode, params);
}

MergedLora LoraEnsemble::MergeParameters(MergeMode mode,
                                         const std::vector<std::vector<at::Tensor>>& params) const {
  at::NoGradGuard no_grad;
  MergedLora m;
  m.slot_ = slot_;
  const size_t n = targets_.size();
  const int E = static_cast<int>(params.size());
  const double s = scaling();
  for (size_t t = 0; t < n; ++t) {
    if (mode == MergeMode::kMeanDelta) {
      std::vector<at::Tensor> as, bs;
      for (int i = 0; i < E; ++i) {
        as.push_back(params[i][t]);
        bs.push_back(params[i][n + t] * (s / E));
      }
      m.a_.push_back(at::cat(as, 0));  // [E*r, in]
      m.b_.push_back(at::cat(bs, 1));  // [out, E*r]
    } else {
      const double w = std::sqrt(s / E);
      at::Tensor a = params[0][t] * w, b = params[0][n + t] * w;
      for (int i = 1; i < E; ++i) {
        a = a + params[i][t] * w;
        b = b + params[i][n + t] * w;
      }
      m.a_.push_back(a);
      m.b_.push_back(b);
    }
  }
  return m;
}

void LoraEnsemble::MergeInto(const MergedLora& merged, const std::vector<LoraTarget>& targets,
                             CausalLm* model) {
  at::NoGradGuard no_grad;
  for (size_t t = 0; t < targets.size(); ++t) {
    at::Tensor& w =
        model->mutable_layer(targets[t].layer).linear[static_cast<int>(targets[t].kind)].weight;
    w.add_(
        at::matmul(merged.b()[t].to(at::kFloat), merged.a()[t].to(at::kFloat)).to(w.scalar_type()));
  }
}

void LoraEnsemble::Unmerge(const MergedLora& merged, const std::vector<LoraTarget>& targets,
                           CausalLm* model) {
  at::NoGradGuard no_grad;
  for (size_t t = 0; t < targets.size(); ++t) {
    at::Tensor& w =
        model->mutable_layer(targets[t].layer).linear[static_cast<int>(targets[t].kind)].weight;
    w.sub_(
        at::matmul(merged.b()[t].to(at::kFloat), merged.a()[t].to(at::kFloat)).to(w.scalar_type()));
  }
}

absl::Status LoraEnsemble::SavePeft(int member, const std::string& dir,
                                    const CausalLm& model) const {
  if (member < 0 || member >= members()) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA: no member ", member));
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (size_t t = 0; t < targets_.size(); ++t) {
    tensors.emplace_back(PeftKey(targets_[t].layer, targets_[t].kind, "A"), a_[member][t].detach());
    tensors.emplace_back(PeftKey(targets_[t].layer, targets_[t].kind, "B"), b_[member][t].detach());
  }
  return WriteAdapter(dir,
                      PeftAdapterConfigJson(options_.rank, options_.alpha, options_.dropout,
                                            ModuleNames(targets_, model.config().num_layers),
                                            ArchitectureName(model.config().arch)),
                      tensors);
}

absl::Status LoraEnsemble::ExportMergedPeft(MergeMode mode, const std::string& dir,
                                            const CausalLm& model) const {
  const MergedLora merged = Merge(mode);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (size_t t = 0; t < targets_.size(); ++t) {
    tensors.emplace_back(PeftKey(targets_[t].layer, targets_[t].kind, "A"), merged.a()[t]);
    tensors.emplace_back(PeftKey(targets_[t].layer, targets_[t].kind, "B"), merged.b()[t]);
  }
  // Scaling is folded into B (and A): lora_alpha = r gives PEFT scaling 1.
  const int64_t r = merged.rank();
  return WriteAdapter(dir,
                      PeftAdapterConfigJson(r, static_cast<double>(r), 0.0,
                                            ModuleNames(targets_, model.config().num_layers),
                                            ArchitectureName(model.config().arch)),
                      tensors);
}

}  // namespace bpo::model
