// Running another `bpo` command as a child process, as the pipelines
// (quickstart, reproduce) do step by step.
#ifndef BPO_CLI_CHILD_H_
#define BPO_CLI_CHILD_H_

#include <string>
#include <vector>

namespace bpo::cli {

// Prints "== what ... ", runs `bpo args...` (this binary) with stdout and
// stderr to `log` (and, when show_output, to the terminal too, indented),
// prints "done in N s" or "FAILED; log: ..."; true on exit status 0.
bool RunBpoStep(const std::string& what, std::vector<std::string> args, const std::string& log,
                bool show_output = false);

// The same without the "==" line and timing: true on exit status 0.
bool RunBpoQuietly(std::vector<std::string> args, const std::string& log);

// What the pipelines build for a synthetic task before any BPO run, in
// `dir`: data/ (bpo task generate), sft/ (a tokenizer and a 2-layer 128-wide
// Llama from scratch, bpo sft) and rm/ (a DeBERTa-v3-style RM trained on
// oracle-labelled samples of that policy, bpo train-rm).
struct TaskSetup {
  std::string task;        // tldr, dialogue
  std::string dir;
  std::string log_prefix;  // logs go to <log_prefix>task.log, sft.log, train-rm.log
  int test_prompts = 100;
  int64_t sft_steps = 1500;
  int64_t rm_steps = 300;
  int rm_pairs = 1000;
  int64_t max_new_tokens = 48;  // of the RM's sampled pairs
  bool show_output = false;     // SFT and RM training progress on the terminal
};

// Runs the steps whose output is missing (a rerun resumes); false when one
// failed (its log is named on the terminal).
bool PrepareTask(const TaskSetup& setup);

}  // namespace bpo::cli

#endif  // BPO_CLI_CHILD_H_
