#include "learner/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "model/json_reader.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "snapshot/snapshot.h"

namespace bpo::learner {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string StepDir(const std::string& dir, int64_t step) {
  return absl::StrCat(dir, "/step-", step);
}

}  // namespace

absl::StatusOr<std::string> ModelSignature(const std::string& model_dir) {
  auto text = model::ReadTextFile(model_dir + "/config.json");
  if (!text.ok()) return text.status();
  const json j = json::parse(*text, nullptr, false);
  std::string arch = "unknown";
  if (j.is_object() && j.contains("architectures") && j["architectures"].is_array() &&
      !j["architectures"].empty() && j["architectures"][0].is_string()) {
    arch = j["architectures"][0].get<std::string>();
  }
  return absl::StrCat(arch, ":", Sha256Hex(*text));
}

absl::Status SaveCheckpoint(const std::string& dir, int rank, int world_size,
                            const CheckpointMeta& meta, EnsembleTrainer& trainer,
                            const model::LoraEnsemble& lora,
                            const std::map<uint64_t, model::MergedLora>& behavior) {
  const std::string step_dir = StepDir(dir, trainer.steps_done());
  std::error_code ec;
  fs::create_directories(step_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(step_dir, ": ", ec.message()));
  // The new step directory's entry (and the checkpoint directory's, when it
  // was just made) must survive a crash before DONE can claim the step.
  BPO_RETURN_IF_ERROR(FsyncDirectory(dir));
  if (const std::string parent = fs::path(dir).parent_path().string(); !parent.empty()) {
    BPO_RETURN_IF_ERROR(FsyncDirectory(parent));
  }
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (int i = 0; i < lora.members(); ++i) {
    const auto params = lora.Parameters(i);
    for (size_t k = 0; k < params.size(); ++k) {
      t.emplace_back(absl::StrCat("member", i, ".", k), params[k].detach());
      t.emplace_back(absl::StrCat("adam", i, ".m", k), trainer.optimizers()[i].exp_avg()[k]);
      t.emplace_back(absl::StrCat("adam", i, ".v", k), trainer.optimizers()[i].exp_avg_sq()[k]);
    }
  }
  for (size_t i = 0; i < trainer.ema_parameters().size(); ++i) {
    for (size_t k = 0; k < trainer.ema_parameters()[i].size(); ++k) {
      t.emplace_back(absl::StrCat("ema", i, ".", k), trainer.ema_parameters()[i][k]);
    }
  }
  std::vector<uint64_t> versions;
  for (const auto& [v, merged] : behavior) {
    versions.push_back(v);
    for (size_t k = 0; k < merged.a().size(); ++k) {
      t.emplace_back(absl::StrCat("behavior", v, ".a", k), merged.a()[k]);
      t.emplace_back(absl::StrCat("behavior", v, ".b", k), merged.b()[k]);
    }
  }
  t.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::vector<int64_t> adam_steps;
  for (const AdamW& opt : trainer.optimizers()) adam_steps.push_back(opt.steps());
  const json info = {{"format", "bpo-learner-checkpoint/1"},
                     {"run_id", meta.run_id},
                     {"model_signature", meta.model_signature},
                     {"behavior_version", meta.behavior_version},
                     {"data_seed", meta.data_seed},
                     {"step", trainer.steps_done()},
                     {"rank", rank},
                     {"world_size", world_size},
                     {"members", lora.members()},
                     {"targets", lora.targets().size()},
                     {"rank_r", lora.rank()},
                     {"adam_steps", adam_steps},
                     {"behavior_versions", versions}};
  BPO_RETURN_IF_ERROR(model::WriteSafetensors(
      absl::StrCat(step_dir, "/rank-", rank, ".safetensors"), t, {{"bpo", info.dump()}}));
  if (world_size == 1) return MarkComplete(step_dir);
  return absl::OkStatus();
}

absl::Status MarkComplete(const std::string& step_dir) {
  const std::string tmp = step_dir + "/DONE.tmp";
  // WriteFileAtomically: write, fsync, close and rename checked, then the
  // step directory fsynced, so that DONE exists only over a durable step.
  return WriteFileAtomically(step_dir + "/DONE", "ok\n");
}

absl::StatusOr<std::string> LatestCheckpoint(const std::string& dir) {
  int64_t best = -1;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int64_t step;
    if (name.rfind("step-", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &step)) continue;
    if (!fs::exists(it->path() / "DONE")) continue;  // incomplete: ignored
    best = std::max(best, step);
  }
  if (best < 0) return absl::NotFoundError(absl::StrCat(dir, ": no complete checkpoint"));
  return StepDir(dir, best);
}

absl::StatusOr<RestoredState> LoadCheckpoint(const std::string& step_dir, int rank,
                                             const CheckpointMeta& expected,
                                             EnsembleTrainer& trainer, model::LoraEnsemble& lora) {
  const std::string path = absl::StrCat(step_dir, "/rank-", rank, ".safetensors");
  auto file = model::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const auto& md = (*file)->header().metadata;
  const auto it = md.find("bpo");
  const json info = it == md.end() ? json() : json::parse(it->second, nullptr, false);
  if (!info.is_object() || info.value("format", "") != "bpo-learner-checkpoint/1") {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a bpo learner checkpoint"));
  }
  auto mismatch = [&](const char* what, const std::string& got, const std::string& want) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": checkpoint ", what, " '", got,
                                                      "' does not match this run's '", want, "'"));
  };
  if (info["run_id"] != expected.run_id) return mismatch("run_id", info["run_id"], expected.run_id);
  if (info["model_signature"] != expected.model_signature) {
    return mismatch("model", info["model_signature"], expected.model_signature);
  }
  if (info["members"] != lora.members() || info["targets"] != lora.targets().size() ||
      info["rank_r"] != lora.rank()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": checkpoint has ", info["members"].dump(), " members of rank ",
        info["rank_r"].dump(), " on ", info["targets"].dump(), " modules; this run has ",
        lora.members(), " of rank ", lora.rank(), " on ", lora.targets().size()));
  }
  // Read and check everything before changing anything.
  auto get = [&](const std::string& name, const at::Tensor& like) -> absl::StatusOr<at::Tensor> {
    auto t = (*file)->Tensor(name);
    if (!t.ok()) return t.status();
    if (like.defined() && (t->sizes() != like.sizes() || t->scalar_type() != like.scalar_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor '", name, "' has the wrong shape or dtype"));
    }
    return t->clone();
  };
  std::vector<std::vector<at::Tensor>> params(lora.members()), m(lora.members()), v(lora.members()),
      ema(trainer.ema_parameters().size());
  for (int i = 0; i < lora.members(); ++i) {
    const auto current = lora.Parameters(i);
    for (size_t k = 0; k < current.size(); ++k) {
      for (auto [prefix, out] : {std::pair<std::string, std::vector<at::Tensor>*>{
                                     absl::StrCat("member", i, "."), &params[i]},
                                 {absl::StrCat("adam", i, ".m"), &m[i]},
                                 {absl::StrCat("adam", i, ".v"), &v[i]}}) {
        auto t = get(absl::StrCat(prefix, k), current[k]);
        if (!t.ok()) return t.status();
        out->push_back(*t);
      }
    }
    if (i < static_cast<int>(ema.size())) {
      for (size_t k = 0; k < current.size(); ++k) {
        auto t = get(absl::StrCat("ema", i, ".", k), current[k]);
        if (!t.ok()) return t.status();
        ema[i].push_back(*t);
      }
    }
  }
  RestoredState out;
  for (const auto& vj : info["behavior_versions"]) {
    const uint64_t ver = vj.get<uint64_t>();
    std::vector<at::Tensor> a, b;
    std::vector<int> slots;
    for (size_t k = 0; k < lora.targets().size(); ++k) {
      auto ta = get(absl::StrCat("behavior", ver, ".a", k), {});
      auto tb = get(absl::StrCat("behavior", ver, ".b", k), {});
      if (!ta.ok()) return ta.status();
      if (!tb.ok()) return tb.status();
      a.push_back(ta->to(lora.A(0, 0).options()));
      b.push_back(tb->to(lora.A(0, 0).options()));
    }
    // The ensemble's slots: the same targets in the same order.
    out.behavior.emplace(ver,
                         model::MergedLora::FromTensors(lora.slots(), std::move(a), std::move(b)));
  }
  auto rng = get("rng.cpu", {});
  if (!rng.ok()) return rng.status();

  at::NoGradGuard no_grad;
  for (int i = 0; i < lora.members(); ++i) {
    const auto current = lora.Parameters(i);
    for (size_t k = 0; k < current.size(); ++k) {
      current[k].copy_(params[i][k]);
      trainer.optimizers()[i].exp_avg()[k].copy_(m[i][k]);
      trainer.optimizers()[i].exp_avg_sq()[k].copy_(v[i][k]);
      if (i < static_cast<int>(ema.size())) trainer.ema_parameters()[i][k].copy_(ema[i][k]);
    }
    trainer.optimizers()[i].set_steps(info["adam_steps"][i].get<int64_t>());
  }
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(*rng);
  trainer.set_steps_done(info["step"].get<int64_t>());
  out.step = info["step"].get<int64_t>();
  out.meta = expected;
  out.meta.behavior_version = info["behavior_version"].get<uint64_t>();
  out.meta.data_seed = info["data_seed"].get<uint64_t>();
  return out;
}

}  // namespace bpo::learner
