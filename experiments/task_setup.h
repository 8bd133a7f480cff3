// What the pipelines (quickstart, reproduce) build for a synthetic task
// before any BPO run, each step a child `bpo` command (experiments/child.h).
#ifndef BPO_EXPERIMENTS_TASK_SETUP_H_
#define BPO_EXPERIMENTS_TASK_SETUP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace bpo::experiments {

// In `dir`: data/ (bpo task generate), sft/ (a tokenizer and a 2-layer
// 128-wide Llama from scratch, bpo sft) and rm/ (a DeBERTa-v3-style RM
// trained on oracle-labelled samples of that policy, bpo train-rm).
struct TaskSetup {
  std::string task;  // tldr, dialogue
  std::string dir;
  std::string log_prefix;  // logs go to <log_prefix>task.log, sft.log, train-rm.log
  int test_prompts = 100;
  int64_t sft_steps = 1500;
  int64_t rm_steps = 300;
  int rm_pairs = 1000;
  int64_t max_new_tokens = 48;  // of the RM's sampled pairs
  bool show_output = false;     // SFT and RM training progress on the terminal
};

// Runs the steps whose output is missing (a rerun resumes: data/test.jsonl,
// sft/model.safetensors and rm/train_rm.json mark them done). The first
// failing step's error (INTERNAL, naming its log) stops it.
absl::Status PrepareTask(const TaskSetup& setup);

}  // namespace bpo::experiments

#endif  // BPO_EXPERIMENTS_TASK_SETUP_H_
