#include "tasks/synthetic.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace bpo::tasks {
namespace {

using Rng = std::mt19937_64;

template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
double Uniform(Rng& rng) { return std::uniform_real_distribution<double>(0, 1)(rng); }

// Lower-cased words without punctuation.
std::vector<std::string> Words(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view w : absl::StrSplit(text, absl::ByAnyChar(" \n\t"), absl::SkipEmpty())) {
    std::string s;
    for (char c : w) {
      if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-')
        s += absl::ascii_tolower(c);
    }
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

const std::set<std::string>& StopWords() {
  static const auto* kStop = new std::set<std::string>{
      "a", "an", "the", "to", "my", "her", "his", "i", "and", "of", "for", "it", "is", "about"};
  return *kStop;
}

std::set<std::string> ContentWords(absl::string_view text) {
  std::set<std::string> out;
  for (auto& w : Words(text)) {
    if (!StopWords().count(w)) out.insert(w);
  }
  return out;
}

// ---- tldr ----

const std::vector<std::string> kSubs = {"relationships", "personalfinance", "AskReddit", "jobs",
                                        "dogs",          "college"};
const std::vector<std::string> kSubjects = {"my sister",     "my roommate",    "my boss",
                                            "my girlfriend", "my best friend", "my neighbor",
                                            "my brother",    "my coworker"};
const std::vector<std::string> kEvents = {"lost her job",     "moved to denver", "adopted a puppy",
                                          "failed the exam",  "bought a boat",   "quit smoking",
                                          "started a bakery", "broke my laptop", "won the lottery",
                                          "joined a band",    "crashed my car",  "got engaged"};
const std::vector<std::string> kQuestions = {"talk to her",     "lend money",  "move out",
                                             "call my parents", "apologize",   "wait a month",
                                             "ask for a raise", "sell the car"};
const std::vector<std::string> kFeelings = {"I feel guilty", "I am worried", "I am angry",
                                            "I feel lost", "I am excited"};
const std::vector<std::string> kFillers = {
    "We have known each other for years.", "It has been a long week.",
    "Everyone has an opinion about it.",   "The weather has been awful lately.",
    "I work nights at a hotel.",           "My parents live far away.",
    "Money has been tight since spring.",  "I rarely post here."};

std::string Capitalize(std::string s) {
  if (!s.empty()) s[0] = absl::ascii_toupper(static_cast<unsigned char>(s[0]));
  return s;
}

struct Post {
  std::string sub, subject, event, question, feeling, filler_a, filler_b;
  int age = 20;
  std::string Prompt() const {
    return absl::StrCat("SUBREDDIT: r/", sub, "\nTITLE: ", Capitalize(subject), " ", event,
                        ", what now?\nPOST: I am ", age, " and ", subject, " ", event, ". ",
                        filler_a, " ", feeling, " about it. ", filler_b, " Should I ", question,
                        "?\nTL;DR:");
  }
};

class TldrTask : public Task {
 public:
  const std::string& name() const override { return name_; }

  TaskData Generate(uint64_t seed, const TaskSizes& sizes) const override {
    Rng rng(seed);
    std::set<std::string> used;
    auto fresh = [&]() {
      while (true) {
        Post p{Pick(rng, kSubs),      Pick(rng, kSubjects), Pick(rng, kEvents),
               Pick(rng, kQuestions), Pick(rng, kFeelings), Pick(rng, kFillers),
               Pick(rng, kFillers)};
        p.age = std::uniform_int_distribution<int>(18, 45)(rng);
        if (p.filler_a == p.filler_b) continue;
        if (used.insert(p.Prompt()).second) return p;
      }
    };
    TaskData d;
    for (int i = 0; i < sizes.sft; ++i) {
      const Post p = fresh();
      const double u = Uniform(rng);
      std::string r;
      if (u < 0.35) {
        r = absl::StrCat(" ", Capitalize(p.subject), " ", p.event, ", should I ", p.question, "?");
      } else if (u < 0.65) {
        r = absl::StrCat(" ", Capitalize(p.subject), " ", p.event, ".");
      } else if (u < 0.85) {
        r = absl::StrCat(" ", p.filler_a, " ", p.feeling, " about it. ", Capitalize(p.subject), " ",
                         p.event, " and I do not know what to do.");
      } else {
        r = absl::StrCat(" ", Capitalize(p.subject), " is acting weird, need advice.");
      }
      d.sft.push_back({p.Prompt(), r});
    }
    for (int i = 0; i < sizes.alignment; ++i) {
      bpo::v1::Prompt pr;
      pr.set_prompt_id(absl::StrCat("tldr-align-", i));
      pr.set_text(fresh().Prompt());
      d.alignment.push_back(std::move(pr));
    }
    for (int i = 0; i < sizes.test; ++i) {
      const Post p = fresh();
      // Human-like: usually who and what, sometimes the question, sometimes a
      // word that is not in the post.
      std::string r = absl::StrCat(" ", Capitalize(p.subject), " ", p.event);
      if (Uniform(rng) < 0.4)
        absl::StrAppend(&r, ", should I ", p.question, "?");
      else
        absl::StrAppend(&r, " and ", absl::AsciiStrToLower(p.feeling), ".");
      if (Uniform(rng) < 0.25) absl::StrAppend(&r, " Help!");
      bpo::v1::Prompt pr;
      pr.set_prompt_id(absl::StrCat("tldr-test-", i));
      pr.set_text(p.Prompt());
      pr.set_reference(r);
      d.test.push_back(std::move(pr));
    }
    return d;
  }

  absl::StatusOr<double> Oracle(const std::string& prompt,
                                const std::string& response) const override {
    const size_t post = prompt.find("\nPOST: "), end = prompt.rfind("\nTL;DR:");
    const size_t and_pos = prompt.find(" and ", post == std::string::npos ? 0 : post);
    const size_t should = prompt.rfind(" Should I ");
    if (post == std::string::npos || end == std::string::npos || and_pos == std::string::npos ||
        should == std::string::npos || should > end) {
      return absl::InvalidArgumentError(
          "not a prompt of the tldr task (no POST ... Should I ...? TL;DR:)");
    }
    const std::string body = prompt.substr(post + 7, end - post - 7);
    const size_t first_stop = prompt.find('.', and_pos);
    std::set<std::string> keys = ContentWords(prompt.substr(and_pos + 5, first_stop - and_pos - 5));
    for (auto& w : ContentWords(prompt.substr(should + 10, end - should - 11))) keys.insert(w);
    std::set<std::string> post_words;
    for (auto& w : Words(body)) post_words.insert(w);
    const std::vector<std::string> words = Words(response);
    if (words.empty()) return -1.0;
    int covered = 0, unfaithful = 0;
    for (const auto& k : keys) covered += std::count(words.begin(), words.end(), k) > 0;
    for (const auto& w : words) unfaithful += post_words.count(w) == 0;
    const double coverage = keys.empty() ? 0 : static_cast<double>(covered) / keys.size();
    const double brevity = 0.05 * std::max<int>(0, static_cast<int>(words.size()) - 12);
    return coverage - static_cast<double>(unfaithful) / words.size() - brevity;
  }

 private:
  const std::string name_ = "tldr";
};

// ---- dialogue ----

const std::vector<std::string> kOps = {"plus", "minus"};
// Operands 0..20: 882 distinct questions, learnable by a tiny model.
constexpr int kMaxOperand = 20;

class DialogueTask : public Task {
 public:
  const std::string& name() const override { return name_; }

  static std::string Prompt(int a, const std::string& op, int b) {
    return absl::StrCat("Human: What is ", a, " ", op, " ", b, "? Assistant:");
  }
  static int Answer(int a, const std::string& op, int b) {
    return op == "plus" ? a + b : op == "minus" ? a - b : a * b;
  }

  TaskData Generate(uint64_t seed, const TaskSizes& sizes) const override {
    Rng rng(seed);
    struct Q {
      int a, b;
      std::string op;
    };
    // Every question, shuffled: test and alignment prompts are distinct and
    // come first; SFT demonstrations draw (with repetition) from the rest.
    std::vector<Q> all;
    for (int a = 0; a <= kMaxOperand; ++a) {
      for (int b = 0; b <= kMaxOperand; ++b) {
        for (const auto& op : kOps) all.push_back({a, b, op});
      }
    }
    std::shuffle(all.begin(), all.end(), rng);
    const size_t reserve_sft = all.size() / 4;
    const size_t n_test = std::min<size_t>(sizes.test, all.size() - reserve_sft);
    const size_t n_align = std::min<size_t>(sizes.alignment, all.size() - reserve_sft - n_test);
    TaskData d;
    for (size_t i = 0; i < n_test; ++i) {
      const Q& q = all[i];
      const int n = Answer(q.a, q.op, q.b);
      const double u = Uniform(rng);
      bpo::v1::Prompt pr;
      pr.set_prompt_id(absl::StrCat("dialogue-test-", i));
      pr.set_text(Prompt(q.a, q.op, q.b));
      pr.set_reference(u < 0.6   ? absl::StrCat(" The answer is ", n, ".")
                       : u < 0.8 ? absl::StrCat(" The answer is ", n + 1, ".")
                                 : absl::StrCat(" I think it is ", n, ", but I am not sure."));
      d.test.push_back(std::move(pr));
    }
    for (size_t i = 0; i < n_align; ++i) {
      const Q& q = all[n_test + i];
      bpo::v1::Prompt pr;
      pr.set_prompt_id(absl::StrCat("dialogue-align-", i));
      pr.set_text(Prompt(q.a, q.op, q.b));
      d.alignment.push_back(std::move(pr));
    }
    std::uniform_int_distribution<size_t> pick(n_test + n_align, all.size() - 1);
    for (int i = 0; i < sizes.sft; ++i) {
      const Q& q = all[pick(rng)];
      const int n = Answer(q.a, q.op, q.b);
      const double u = Uniform(rng);
      std::string r = u < 0.45   ? absl::StrCat(" The answer is ", n, ".")
                      : u < 0.65 ? absl::StrCat(" ", n)
                      : u < 0.85
                          ? absl::StrCat(" The answer is ", n + (Uniform(rng) < 0.5 ? 1 : -1), ".")
                          : absl::StrCat(" Let me think about ", q.a, " and ", q.b,
                                         ". I believe the result is ", n, ", more or less.");
      d.sft.push_back({Prompt(q.a, q.op, q.b), r});
    }
    return d;
  }

  absl::StatusOr<double> Oracle(const std::string& prompt,
                                const std::string& response) const override {
    std::vector<std::string> w = absl::StrSplit(prompt, ' ');
    // "Human: What is A OP B? Assistant:"
    int a = 0, b = 0;
    if (w.size() != 7 || w[0] != "Human:" || !absl::SimpleAtoi(w[3], &a) ||
        std::find(kOps.begin(), kOps.end(), w[4]) == kOps.end() || w[5].empty() ||
        w[5].back() != '?' || !absl::SimpleAtoi(w[5].substr(0, w[5].size() - 1), &b)) {
      return absl::InvalidArgumentError(
          "not a prompt of the dialogue task (Human: What is A op B? Assistant:)");
    }
    const int n = Answer(a, w[4], b);
    const std::string want = absl::StrCat(n);
    double score = 0;
    int numbers = 0;
    bool correct = false;
    std::vector<std::string> tokens;
    for (absl::string_view t :
         absl::StrSplit(response, absl::ByAnyChar(" ,.!?"), absl::SkipEmpty())) {
      tokens.emplace_back(t);
      int v;
      if (absl::SimpleAtoi(t, &v)) {
        ++numbers;
        correct = correct || t == want;
      }
    }
    if (tokens.empty()) return -1.0;
    score += correct ? 1.0 : 0.0;
    score -= 0.25 * (numbers - (correct ? 1 : 0));  // wrong numbers
    if (absl::StripAsciiWhitespace(response) == absl::StrCat("The answer is ", n, "."))
      score += 0.5;
    score -= 0.05 * std::max<int>(0, static_cast<int>(tokens.size()) - 6);
    return score;
  }

 private:
  const std::string name_ = "dialogue";
};

}  // namespace

std::vector<std::string> TaskNames() { return {"tldr", "dialogue"}; }

absl::StatusOr<std::unique_ptr<Task>> MakeTask(const std::string& name) {
  if (name == "tldr") return std::make_unique<TldrTask>();
  if (name == "dialogue") return std::make_unique<DialogueTask>();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown task '", name, "'; known: ", absl::StrJoin(TaskNames(), ", ")));
}

absl::Status WriteTaskData(const TaskData& data, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": ", ec.message()));
  auto write = [&](const std::string& name,
                   const std::vector<nlohmann::json>& rows) -> absl::Status {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ofstream out(path);
    for (const auto& r : rows) out << r.dump() << "\n";
    out.close();
    if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
    return absl::OkStatus();
  };
  std::vector<nlohmann::json> sft, align, test;
  for (const auto& s : data.sft) sft.push_back({{"prompt", s.prompt}, {"response", s.response}});
  for (const auto& p : data.alignment)
    align.push_back({{"id", p.prompt_id()}, {"prompt", p.text()}});
  for (const auto& p : data.test) {
    test.push_back({{"id", p.prompt_id()}, {"prompt", p.text()}, {"reference", p.reference()}});
  }
  if (auto s = write("sft.jsonl", sft); !s.ok()) return s;
  if (auto s = write("prompts.jsonl", align); !s.ok()) return s;
  return write("test.jsonl", test);
}

}  // namespace bpo::tasks
