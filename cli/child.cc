#include "cli/child.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace bpo::cli {

namespace {

// show_output: the child's stdout and stderr go through a pipe to both the
// terminal (indented) and `log`.
bool Run(std::vector<std::string> args, const std::string& log, bool show_output) {
  args.insert(args.begin(), "bpo");
  std::cout << std::flush;
  int fds[2] = {-1, -1};
  if (show_output && pipe(fds) != 0) return false;
  const pid_t pid = fork();
  if (pid == 0) {
    if (show_output) {
      close(fds[0]);
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[1]);
    } else {
      if (std::freopen(log.c_str(), "w", stdout) == nullptr) _exit(126);
      dup2(1, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  if (pid < 0) return false;
  if (show_output) {
    close(fds[1]);
    std::FILE* out = std::fopen(log.c_str(), "w");
    char buf[4096];
    bool line_start = true;
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (out != nullptr) std::fwrite(buf, 1, n, out);
      for (ssize_t i = 0; i < n; ++i) {
        if (line_start) std::cout << "   ";
        std::cout << buf[i];
        line_start = buf[i] == '\n';
      }
      std::cout << std::flush;
    }
    close(fds[0]);
    if (out != nullptr) std::fclose(out);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

bool RunBpoStep(const std::string& what, std::vector<std::string> args, const std::string& log,
                bool show_output) {
  const absl::Time t0 = absl::Now();
  std::cout << "== " << what << (show_output ? "\n" : " ... ") << std::flush;
  const bool ok = Run(std::move(args), log, show_output);
  std::cout << (ok ? absl::StrFormat("done in %.0f s\n", absl::ToDoubleSeconds(absl::Now() - t0))
                   : absl::StrCat("FAILED; log: ", log, "\n"))
            << std::flush;
  return ok;
}

bool RunBpoQuietly(std::vector<std::string> args, const std::string& log) {
  return Run(std::move(args), log, false);
}

bool PrepareTask(const TaskSetup& t) {
  const std::string data = t.dir + "/data", sft = t.dir + "/sft", rm = t.dir + "/rm";
  if (!std::filesystem::exists(data + "/test.jsonl") &&
      !RunBpoStep(absl::StrCat(t.task, ": task data (bpo task generate)"),
                  {"task", "generate", "--task=" + t.task, "--out=" + data, "--sft_size=4000",
                   "--alignment_size=400", absl::StrCat("--test_size=", t.test_prompts), "--data_seed=1"},
                  t.log_prefix + "task.log")) {
    return false;
  }
  if (!std::filesystem::exists(sft + "/model.safetensors") &&
      !RunBpoStep(absl::StrCat(t.task, ": tokenizer + SFT policy from scratch (bpo sft)"),
                  {"sft", "--sft_data=" + data + "/sft.jsonl", "--model_out=" + sft,
                   absl::StrCat("--sft_steps=", t.sft_steps), "--vocab_size=512", "--hidden_size=128",
                   "--layers=2", "--sft_lr=2e-3"},
                  t.log_prefix + "sft.log", t.show_output)) {
    return false;
  }
  if (!std::filesystem::exists(rm + "/train_rm.json") &&
      !RunBpoStep(absl::StrCat(t.task, ": reward model, DeBERTa-v3 architecture, Bradley-Terry on "
                               "oracle-labelled samples (bpo train-rm)"),
                  {"train-rm", "--policy=" + sft, "--rm_prompts=" + data + "/sft.jsonl", "--task=" + t.task,
                   absl::StrCat("--rm_pairs=", t.rm_pairs), "--rm_out=" + rm,
                   absl::StrCat("--rm_steps=", t.rm_steps),
                   absl::StrCat("--rm_max_new_tokens=", t.max_new_tokens)},
                  t.log_prefix + "train-rm.log", t.show_output)) {
    return false;
  }
  return true;
}

}  // namespace bpo::cli
