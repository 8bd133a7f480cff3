// bpo task generate: writes a built-in synthetic task's data files.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "cli/shared_flags.h"
#include "tasks/synthetic.h"

ABSL_FLAG(uint64_t, data_seed, 1, "Seed of the generated data.");
ABSL_FLAG(int, sft_size, 2000, "SFT demonstrations.");
ABSL_FLAG(int, alignment_size, 2000, "Alignment prompts (the coordinator's prompt set).");
ABSL_FLAG(int, test_size, 200, "Test prompts with reference responses.");

namespace bpo::cli {
namespace {

int RunTaskGenerate(const std::vector<std::string>&) {
  auto task = tasks::MakeTask(absl::GetFlag(FLAGS_task));
  if (!task.ok()) {
    std::cerr << "bpo task generate: " << task.status().message() << "\n";
    return kExitUsage;
  }
  if (absl::GetFlag(FLAGS_out).empty()) {
    std::cerr << "bpo task generate: --out names no directory\n";
    return kExitUsage;
  }
  for (int n : {absl::GetFlag(FLAGS_sft_size), absl::GetFlag(FLAGS_alignment_size),
                absl::GetFlag(FLAGS_test_size)}) {
    if (n < 0) {
      std::cerr << "bpo task generate: sizes must be >= 0\n";
      return kExitUsage;
    }
  }
  const tasks::TaskData data =
      (*task)->Generate(absl::GetFlag(FLAGS_data_seed),
                        {absl::GetFlag(FLAGS_sft_size), absl::GetFlag(FLAGS_alignment_size),
                         absl::GetFlag(FLAGS_test_size)});
  if (auto s = tasks::WriteTaskData(data, absl::GetFlag(FLAGS_out)); !s.ok())
    return Fail("task generate", s);
  std::cout << "task " << (*task)->name() << ": " << data.sft.size() << " SFT demonstrations, "
            << data.alignment.size() << " alignment prompts, " << data.test.size()
            << " test prompts with references in " << absl::GetFlag(FLAGS_out)
            << " (annotate with annotation.rule: oracle:" << (*task)->name() << ")\n";
  return kExitOk;
}

}  // namespace

const Command& TaskGenerateCommand() {
  static const Command kCommand{
      "task generate",
      "Write a built-in synthetic task's SFT, alignment and test files.",
      "bpo task generate --task tldr|dialogue --out DIR [--data_seed N] [--sft_size N] "
      "[--alignment_size N] [--test_size N]",
      __FILE__,
      0,
      0,
      &RunTaskGenerate,
      {},
      {"task", "out"}};
  return kCommand;
}

}  // namespace bpo::cli
