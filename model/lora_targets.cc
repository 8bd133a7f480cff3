#include "model/lora_targets.h"

#include <algorithm>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bpo::model {
namespace {

// Modules of a causal LM that PEFT's LoRA can adapt but bpo does not.
constexpr const char* kUnsupportedModules[] = {"lm_head", "model.embed_tokens"};

// PEFT's list matching: the name equals the entry or ends with "." + entry.
bool ListEntryMatches(const std::string& entry, const std::string& module) {
  return module == entry || absl::EndsWith(module, absl::StrCat(".", entry));
}

std::string Allowed(Architecture arch, int64_t num_layers) {
  return absl::StrCat(
      "allowed: the linear layers of ", ArchitectureName(arch),
      "'s decoder layers, by short name (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
      "down_proj), suffix (mlp.down_proj) or full name (model.layers.N.self_attn.q_proj, N in [0, ",
      num_layers, ")), 'all-linear', or one regular expression string");
}

}  // namespace

std::string LinearModuleName(int64_t layer, LinearKind kind) {
  return absl::StrCat("model.layers.", layer, ".", LinearParent(kind), ".", LinearName(kind));
}

absl::StatusOr<std::vector<bool>> SelectLoraTargets(const LoraTargetModules& targets,
                                                    Architecture arch, int64_t num_layers) {
  const int64_t n = num_layers * kNumLinearKinds;
  std::vector<std::string> modules(n);
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int k = 0; k < kNumLinearKinds; ++k) {
      modules[l * kNumLinearKinds + k] = LinearModuleName(l, static_cast<LinearKind>(k));
    }
  }
  std::vector<bool> mask(n, false);
  const bool all_linear = absl::AsciiStrToLower(targets.pattern) == "all-linear";
  if (!targets.pattern.empty() && !all_linear) {
    std::regex re;
    try {
      re = std::regex(targets.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoRA target_modules: '", targets.pattern,
          "' is not a regular expression bpo can read (ECMAScript syntax): ", e.what()));
    }
    for (const char* m : kUnsupportedModules) {
      if (std::regex_match(m, re)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "LoRA target_modules: the regular expression '", targets.pattern, "' selects '", m,
            "', which bpo cannot adapt (", Allowed(arch, num_layers), ")"));
      }
    }
    bool any = false;
    for (int64_t i = 0; i < n; ++i) any |= mask[i] = std::regex_match(modules[i], re);
    if (!any) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoRA target_modules: the regular expression '", targets.pattern,
                       "' matches no linear layer of ", ArchitectureName(arch), " (",
                       Allowed(arch, num_layers), ")"));
    }
    return mask;
  }
  if (all_linear) {
    mask.assign(n, true);
    return mask;
  }
  if (targets.names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA target_modules: empty (", Allowed(arch, num_layers), ")"));
  }
  for (const std::string& entry : targets.names) {
    if (entry == "all-linear") {
      mask.assign(n, true);
      continue;
    }
    for (const char* m : kUnsupportedModules) {
      if (ListEntryMatches(entry, m)) {
        return absl::InvalidArgumentError(absl::StrCat("LoRA target module '", entry,
                                                       "' is not supported: bpo cannot adapt ", m,
                                                       " (", Allowed(arch, num_layers), ")"));
      }
    }
    bool any = false;
    for (int64_t i = 0; i < n; ++i) {
      if (ListEntryMatches(entry, modules[i])) mask[i] = any = true;
    }
    if (!any) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoRA target module '", entry, "' matches no linear layer of ", ArchitectureName(arch),
          " with ", num_layers, " layers (", Allowed(arch, num_layers), ")"));
    }
  }
  return mask;
}

std::vector<std::string> LoraTargetModuleNames(const std::vector<bool>& mask, int64_t num_layers) {
  bool whole_kinds = true;
  std::vector<std::string> names;
  for (int k = 0; k < kNumLinearKinds; ++k) {
    int64_t selected = 0;
    for (int64_t l = 0; l < num_layers; ++l) selected += mask[l * kNumLinearKinds + k];
    if (selected == num_layers) names.push_back(LinearName(static_cast<LinearKind>(k)));
    whole_kinds = whole_kinds && (selected == 0 || selected == num_layers);
  }
  if (!whole_kinds) {
    names.clear();
    for (int64_t l = 0; l < num_layers; ++l) {
      for (int k = 0; k < kNumLinearKinds; ++k) {
        if (mask[l * kNumLinearKinds + k]) {
          names.push_back(LinearModuleName(l, static_cast<LinearKind>(k)));
        }
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace bpo::model
