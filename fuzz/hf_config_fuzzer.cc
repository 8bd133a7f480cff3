// libFuzzer target: a model's config.json (model/hf_config.h). Any bytes give
// a config or INVALID_ARGUMENT naming the source; a config that parses has
// every size in range and the head layout the model code relies on.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "model/hf_config.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "hf_config_fuzzer: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = bpo::model::ParseCausalLmConfig(text, "fuzz/config.json");
  if (!config.ok()) {
    if (config.status().code() != absl::StatusCode::kInvalidArgument) Fail("unexpected code");
    if (!absl::StartsWith(config.status().message(), "fuzz/config.json: ")) {
      Fail("error does not name the file");
    }
    return 0;
  }
  const bpo::model::CausalLmConfig& c = *config;
  for (int64_t v : {c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads,
                    c.num_kv_heads, c.head_dim}) {
    if (v <= 0) Fail("a size is not positive");
  }
  if (c.num_heads % c.num_kv_heads != 0) Fail("kv heads do not divide heads");
  if (c.head_dim % 2 != 0) Fail("odd head_dim");
  if (static_cast<int64_t>(c.layer_is_sliding.size()) != c.num_layers) {
    Fail("layer_is_sliding does not have one entry a layer");
  }
  if (c.eos_token_ids.empty() ? c.eos_token_id != -1 : c.eos_token_id != c.eos_token_ids[0]) {
    Fail("eos_token_id is not the first of eos_token_ids");
  }
  return 0;
}
