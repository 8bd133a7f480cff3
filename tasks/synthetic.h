// Built-in synthetic tasks, deterministic from a seed and shaped like the
// paper's, small enough that a tiny model learns them on a CPU in minutes:
//
//   tldr      Reddit-style posts in the TL;DR format ("SUBREDDIT: r/... TITLE:
//             ... POST: ... TL;DR:"). The hidden oracle rewards covering the
//             post's key content (who, what happened, the question asked),
//             faithfulness (no words that are not in the post) and brevity.
//   dialogue  arithmetic questions in the helpfulness format ("Human: What is
//             7 plus 5? Assistant:"; operands 0..20, plus or minus: 882
//             questions). The oracle rewards the correct number and a
//             well-formed, short answer ("The answer is 12."). Test and
//             alignment prompts are capped so that a quarter of the questions
//             stay for SFT, whose demonstrations repeat questions.
//
// Each task provides SFT demonstrations of mixed quality (so that preference
// learning has room to improve on SFT), alignment prompts, test prompts
// disjoint from both, imperfect human-like reference responses for the test
// prompts, and its oracle, used by the `rule` annotator as "oracle:<task>"
// and by evaluation. Responses start with a space, as in TL;DR data.
#ifndef BPO_TASKS_SYNTHETIC_H_
#define BPO_TASKS_SYNTHETIC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpo/v1/common.pb.h"

namespace bpo::tasks {

struct Demonstration {
  std::string prompt;
  std::string response;
};

struct TaskData {
  std::vector<Demonstration> sft;
  std::vector<bpo::v1::Prompt> alignment;  // no reference
  std::vector<bpo::v1::Prompt> test;       // with reference
};

struct TaskSizes {
  int sft = 2000;
  int alignment = 2000;
  int test = 200;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const std::string& name() const = 0;
  // Test and alignment prompts are distinct and never among the SFT prompts
  // (SFT prompts may repeat in the dialogue task).
  virtual TaskData Generate(uint64_t seed, const TaskSizes& sizes) const = 0;
  // The hidden oracle's reward of `response` to `prompt` (a prompt of this
  // task); higher is better. INVALID_ARGUMENT when the prompt is not one.
  virtual absl::StatusOr<double> Oracle(const std::string& prompt,
                                        const std::string& response) const = 0;
};

// "tldr" or "dialogue"; INVALID_ARGUMENT naming the known tasks otherwise.
absl::StatusOr<std::unique_ptr<Task>> MakeTask(const std::string& name);
std::vector<std::string> TaskNames();

// Writes <dir>/sft.jsonl ({"prompt","response"}), <dir>/prompts.jsonl
// ({"id","prompt"}) and <dir>/test.jsonl ({"id","prompt","reference"}).
absl::Status WriteTaskData(const TaskData& data, const std::string& dir);

}  // namespace bpo::tasks

#endif  // BPO_TASKS_SYNTHETIC_H_
