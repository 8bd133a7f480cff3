// libFuzzer target: snapshot decoding (snapshot/snapshot.h DecodeSnapshot)
// against the tiny Llama of tests/fixtures/llama, loaded once. Any bytes give
// a snapshot or INVALID_ARGUMENT / DATA_LOSS; a snapshot that decodes has
// factors of the shapes the model's adapted layers need and the member
// tensors its metadata announces.
//
// BPO_FUZZ_WRITE_SEEDS=<dir> writes the seed corpus instead (snapshots of a
// rank-1, two-member ensemble on q_proj, in both merge modes, with and without
// the members) and exits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "model/causal_lm.h"
#include "model/lora.h"
#include "snapshot/snapshot.h"

namespace {

bpo::model::CausalLm* g_model = nullptr;

[[noreturn]] void Fail(const std::string& why) {
  std::fprintf(stderr, "snapshot_fuzzer: %s\n", why.c_str());
  std::abort();
}

void WriteSeeds(const std::string& dir) {
  bpo::model::LoraOptions options;
  options.members = 2;
  options.rank = 1;
  options.alpha = 1;
  options.target_modules = {"q_proj"};
  auto lora = bpo::model::LoraEnsemble::Create(*g_model, options);
  if (!lora.ok()) Fail(lora.status().ToString());
  for (auto mode : {bpo::model::MergeMode::kMeanDelta, bpo::model::MergeMode::kPeftLinear}) {
    for (bool members : {false, true}) {
      auto bytes = bpo::snapshot::EncodeSnapshot(**lora, mode, members, 3, 300);
      if (!bytes.ok()) Fail(bytes.status().ToString());
      const std::string path = dir + "/" + bpo::model::MergeModeName(mode) +
                               (members ? "-members" : "") + ".safetensors";
      std::ofstream(path, std::ios::binary) << *bytes;
      std::fprintf(stderr, "wrote %s (%zu bytes)\n", path.c_str(), bytes->size());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto model = bpo::model::CausalLm::Load(BPO_SOURCE_DIR "/tests/fixtures/llama");
  if (!model.ok()) Fail(model.status().ToString());
  g_model = model->release();
  if (const char* dir = std::getenv("BPO_FUZZ_WRITE_SEEDS")) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto decoded = bpo::snapshot::DecodeSnapshot(bytes, *g_model, "fuzz");
  if (!decoded.ok()) {
    const absl::StatusCode code = decoded.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kDataLoss) {
      Fail(decoded.status().ToString());
    }
    return 0;
  }
  const bpo::snapshot::DecodedSnapshot& s = *decoded;
  if (s.metadata.format != bpo::snapshot::kSnapshotFormat) Fail("another format decoded");
  const auto& a = s.merged.a();
  const auto& b = s.merged.b();
  if (a.size() != s.targets.size() || b.size() != s.targets.size()) {
    Fail("factors do not match the targets");
  }
  for (size_t i = 0; i < s.targets.size(); ++i) {
    const bpo::model::LoraTarget& t = s.targets[i];
    if (a[i].dim() != 2 || b[i].dim() != 2 || a[i].size(0) != s.metadata.rank ||
        a[i].size(1) != t.in || b[i].size(0) != t.out || b[i].size(1) != s.metadata.rank) {
      Fail("a merged factor of the wrong shape");
    }
  }
  const size_t members = s.metadata.members_included ? s.metadata.members : 0;
  if (s.member_params.size() != members) Fail("member tensors do not match the metadata");
  for (const auto& params : s.member_params) {
    if (params.size() != 2 * s.targets.size()) Fail("a member without A and B for every target");
  }
  return 0;
}
