#include "model/hf_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "model/json_reader.h"

namespace bpo::model {
namespace {

using nlohmann::json;

// Far above any released model (Gemma-2 27B: 46 layers, vocab 256000), far
// below sizes whose bookkeeping alone would exhaust memory.
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxDimension = int64_t{1} << 31;

// transformers' ACT2FN names bpo implements (activations.py, 4.57):
// "gelu" is the exact erf GELU; the tanh approximation goes by several names.
absl::StatusOr<Activation> ParseActivation(const std::string& name, const std::string& where) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu" || name == "gelu_python") return Activation::kGelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_python_tanh" || name == "gelu_new" ||
      name == "gelu_fast") {
    return Activation::kGeluTanh;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": unsupported activation '", name,
      "' (supported: silu, swish; gelu, gelu_python (exact erf GELU); gelu_pytorch_tanh, "
      "gelu_python_tanh, gelu_new, gelu_fast (tanh approximation))"));
}

}  // namespace

const char* ArchitectureName(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return "LlamaForCausalLM";
    case Architecture::kGemma:
      return "GemmaForCausalLM";
    case Architecture::kGemma2:
      return "Gemma2ForCausalLM";
  }
  return "?";
}

absl::StatusOr<CausalLmConfig> ParseCausalLmConfig(const std::string& json_text,
                                                   const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  JsonReader r(j, source);
  CausalLmConfig c;
  std::string arch_name;
  if (j.contains("architectures") && !j["architectures"].is_null()) {
    const json& archs = j["architectures"];
    if (!archs.is_array() || (!archs.empty() && !archs[0].is_string())) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": architectures: expected a list of class names, got ", archs.dump()));
    }
    if (!archs.empty()) arch_name = archs[0].get<std::string>();
  }
  const std::string model_type = r.String("model_type", "");
  if (arch_name == "LlamaForCausalLM" || (arch_name.empty() && model_type == "llama")) {
    c.arch = Architecture::kLlama;
  } else if (arch_name == "GemmaForCausalLM" || (arch_name.empty() && model_type == "gemma")) {
    c.arch = Architecture::kGemma;
  } else if (arch_name == "Gemma2ForCausalLM" || (arch_name.empty() && model_type == "gemma2")) {
    c.arch = Architecture::kGemma2;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": architectures: unsupported architecture '",
                     arch_name.empty() ? model_type : arch_name,
                     "' (supported: LlamaForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM)"));
  }
  c.vocab_size = r.Int("vocab_size");
  c.hidden_size = r.Int("hidden_size");
  c.intermediate_size = r.Int("intermediate_size");
  c.num_layers = r.Int("num_hidden_layers");
  c.num_heads = r.Int("num_attention_heads");
  c.num_kv_heads = r.Int("num_key_value_heads", c.num_heads);
  c.head_dim = r.Int("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = r.Int("max_position_embeddings", 8192);
  c.rms_norm_eps = r.Double("rms_norm_eps", 1e-6);
  c.rope_theta = r.Double("rope_theta", 10000);
  c.attention_bias = r.Bool("attention_bias", false);
  c.mlp_bias = r.Bool("mlp_bias", false);
  c.bos_token_id = r.Int("bos_token_id", -1);
  c.pad_token_id = r.Int("pad_token_id", -1);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    for (const auto& v : j["eos_token_id"]) {
      if (v.is_number_integer()) c.eos_token_ids.push_back(v.get<int64_t>());
    }
  } else {
    const int64_t eos = r.Int("eos_token_id", -1);
    if (eos >= 0) c.eos_token_ids.push_back(eos);
  }
  c.eos_token_id = c.eos_token_ids.empty() ? -1 : c.eos_token_ids.front();

  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": rope_scaling: ", j["rope_scaling"].dump(),
                     " is not supported (only unscaled RoPE is implemented)"));
  }
  // The key each architecture's MLP reads in transformers 4.57, with its
  // config class's default: LlamaMLP and GemmaMLP use ACT2FN[hidden_act]
  // (GemmaConfig also stores hidden_activation, which GemmaMLP ignores),
  // Gemma2MLP uses ACT2FN[hidden_activation] (hidden_act is ignored).
  const char* act_key = c.arch == Architecture::kGemma2 ? "hidden_activation" : "hidden_act";
  if (j.contains(act_key) && j[act_key].is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", act_key, ": is null; ", ArchitectureName(c.arch),
                     " needs an activation name here (transformers has no default for null)"));
  }
  const std::string act =
      r.String(act_key, c.arch == Architecture::kLlama ? "silu" : "gelu_pytorch_tanh");
  BPO_RETURN_IF_JSON_ERROR(r);
  auto activation = ParseActivation(act, absl::StrCat(source, ": ", act_key));
  if (!activation.ok()) return activation.status();
  c.activation = *activation;

  switch (c.arch) {
    case Architecture::kLlama:
      c.tie_word_embeddings = r.Bool("tie_word_embeddings", false);
      break;
    case Architecture::kGemma:
      c.tie_word_embeddings = r.Bool("tie_word_embeddings", true);
      c.scale_embeddings = c.norm_adds_one = true;
      break;
    case Architecture::kGemma2: {
      c.tie_word_embeddings = r.Bool("tie_word_embeddings", true);
      c.scale_embeddings = c.norm_adds_one = c.sandwich_norms = true;
      c.attn_logit_softcap = r.Double("attn_logit_softcapping", 0);
      c.final_logit_softcap = r.Double("final_logit_softcapping", 0);
      c.query_pre_attn_scalar = r.Double("query_pre_attn_scalar", 0);
      c.sliding_window = r.Int("sliding_window", 0);
      break;
    }
  }
  BPO_RETURN_IF_JSON_ERROR(r);
  // Sizes are bounded before anything is allocated from them: a config.json
  // asking for 2^40 layers is an error, not an out-of-memory abort.
  auto positive = [&](const char* key, int64_t v) -> absl::Status {
    const int64_t most = std::string_view(key) == "num_hidden_layers" ? kMaxLayers : kMaxDimension;
    if (v <= 0 || v > most) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", key, ": must be in [1, ", most, "], got ", v));
    }
    return absl::OkStatus();
  };
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                               {"hidden_size", c.hidden_size},
                               {"intermediate_size", c.intermediate_size},
                               {"num_hidden_layers", c.num_layers},
                               {"num_attention_heads", c.num_heads},
                               {"num_key_value_heads", c.num_kv_heads},
                               {"head_dim", c.head_dim}}) {
    if (auto s = positive(key, v); !s.ok()) return s;
  }
  c.layer_is_sliding.assign(c.num_layers, false);
  if (c.arch == Architecture::kGemma2 && c.sliding_window > 0) {
    if (j.contains("layer_types") && j["layer_types"].is_array()) {
      const auto& types = j["layer_types"];
      if (static_cast<int64_t>(types.size()) != c.num_layers) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": layer_types has ", types.size(),
                                                       " entries for ", c.num_layers, " layers"));
      }
      for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string t = types[i].is_string() ? types[i].get<std::string>() : "";
        if (t != "sliding_attention" && t != "full_attention") {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": layer_types[", i, "]: unsupported '", t, "'"));
        }
        c.layer_is_sliding[i] = t == "sliding_attention";
      }
    } else {
      for (int64_t i = 0; i < c.num_layers; ++i) c.layer_is_sliding[i] = i % 2 == 0;
    }
  }
  BPO_RETURN_IF_JSON_ERROR(r);

  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": num_key_value_heads: ", c.num_kv_heads,
                     " does not divide num_attention_heads ", c.num_heads));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": head_dim: RoPE needs an even head_dim, got ", c.head_dim));
  }
  return c;
}

absl::StatusOr<CausalLmConfig> LoadCausalLmConfig(const std::string& path) {
  auto config = ReadModelConfig(path);
  if (!config.ok()) return config.status();
  return ParseCausalLmConfig(config->text, config->path);
}

}  // namespace bpo::model
