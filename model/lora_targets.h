// Which decoder linear layers a LoRA adapter's `target_modules` selects,
// matched the way PEFT 0.18 matches them against the Hugging Face module names
// of a causal LM ("model.layers.3.mlp.down_proj"):
//   - a list: a module is selected if its name equals an entry or ends with
//     "." + entry, so short names ("q_proj"), suffixes ("mlp.down_proj") and
//     full paths (what PEFT 0.18 writes for "all-linear" adapters) all work;
//   - one string: "all-linear" (any case) selects every linear layer but the
//     output head; any other string is a regular expression that must match
//     the whole module name (PEFT: re.fullmatch). bpo reads it as an
//     ECMAScript std::regex, which agrees with Python's `re` for the usual
//     patterns (classes, alternation, repetition, anchors) but not for
//     Python-only syntax such as (?P<name>...), which is refused.
// bpo's own LoraOptions also accept "all-linear" as a list entry.
//
// Only q/k/v/o_proj and gate/up/down_proj of the decoder layers can be
// adapted: an entry that selects none of them, or that selects a module PEFT
// could adapt but bpo does not (lm_head, model.embed_tokens), is an
// INVALID_ARGUMENT naming the entry and what is allowed.
#ifndef BPO_MODEL_LORA_TARGETS_H_
#define BPO_MODEL_LORA_TARGETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"

namespace bpo::model {

// target_modules in either of PEFT's forms.
struct LoraTargetModules {
  std::vector<std::string> names;  // the list form
  std::string pattern;             // the string form; when non-empty, `names` is unused
};

// The Hugging Face module name of a decoder linear layer:
// "model.layers.<layer>.<self_attn|mlp>.<q_proj|...>".
std::string LinearModuleName(int64_t layer, LinearKind kind);

// The selected layers as a mask [num_layers * kNumLinearKinds], indexed
// layer * kNumLinearKinds + kind. `arch` only names the model in errors.
absl::StatusOr<std::vector<bool>> SelectLoraTargets(const LoraTargetModules& targets,
                                                    Architecture arch, int64_t num_layers);

// target_modules that select exactly `mask` (as SelectLoraTargets returns
// it): the short names of the kinds when each kind is selected in every layer
// or in none (sorted, as PEFT writes them), otherwise the full module names.
std::vector<std::string> LoraTargetModuleNames(const std::vector<bool>& mask, int64_t num_layers);

}  // namespace bpo::model

#endif  // BPO_MODEL_LORA_TARGETS_H_
