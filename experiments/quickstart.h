// `bpo quickstart`: the whole method on a laptop CPU, nothing downloaded.
//   1. the synthetic summarisation task's data (bpo task generate),
//   2. a tokenizer and a small policy trained from scratch (bpo sft),
//   3. a DeBERTa-v3-style reward model trained on pairs sampled from that
//      policy and labelled by the task's hidden oracle (bpo train-rm),
//   4. a BPO run through the distributed system (bpo local: coordinator,
//      2 actors, the reward model as annotator, 2 learner ranks),
//   5. evaluation of SFT and BPO against the test references, judged by the
//      reward model and by the hidden oracle (bpo eval), and a report.
// Each step is a child `bpo` process with its log in the directory; a step
// whose output exists is skipped, so a rerun resumes. Progress on stdout.
#ifndef BPO_EXPERIMENTS_QUICKSTART_H_
#define BPO_EXPERIMENTS_QUICKSTART_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace bpo::experiments {

struct QuickstartOptions {
  std::string dir;  // where everything goes, absolute
  int64_t sft_steps = 1500;
  int bpo_steps = 40;  // T; F = max(1, T/4) annotation phases
  int64_t rm_steps = 300;
};

// The BPO run's `bpo local` config (YAML) for the task set up in `dir`.
std::string QuickstartConfigYaml(const QuickstartOptions& options);

// Runs the steps above and writes <dir>/report.md. INTERNAL naming the
// failed step's log, or the evaluation result that could not be read.
absl::Status Quickstart(const QuickstartOptions& options);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_QUICKSTART_H_
