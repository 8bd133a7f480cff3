// The prompt readers on the shared real files (../shared/data) and on
// malformed ones.
#include "data/prompts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bpo::data {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string Shared(const std::string& rel) {
  return (fs::path(BPO_SOURCE_DIR) / ".." / "shared" / "data" / rel).lexically_normal().string();
}

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = (fs::path(::testing::TempDir()) / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(PromptsTest, ReadsTheTldrEvalCsv) {
  auto prompts = ReadTldrCsv(Shared("tldr/oai1b.csv"));
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  ASSERT_EQ(prompts->size(), 1945u);  // the README's count
  for (const auto& p : *prompts) {
    EXPECT_TRUE(absl::StartsWith(p.text(), "SUBREDDIT: r/")) << p.prompt_id();
    EXPECT_TRUE(absl::EndsWith(p.text(), "TL;DR:")) << p.prompt_id();
    EXPECT_TRUE(absl::StartsWith(p.reference(), " ")) << p.prompt_id() << ": " << p.reference();
  }
  // Quoted fields keep their newlines.
  EXPECT_THAT((*prompts)[0].text(),
              HasSubstr("\n\nTITLE: How do you get someone out of your head?"));
}

TEST(PromptsTest, ReadsHhRlhfHarmlessDialoguesInThePapersFormat) {
  auto prompts = ReadHarmlessJsonl(Shared("hh-rlhf/harmless-base-test.jsonl.gz"));
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  ASSERT_EQ(prompts->size(), 2312u);
  for (const auto& p : *prompts) {
    EXPECT_TRUE(absl::StartsWith(p.text(), "user: ")) << p.prompt_id();
    EXPECT_TRUE(absl::EndsWith(p.text(), "\nassistant:")) << p.prompt_id();
    EXPECT_FALSE(absl::StrContains(p.text(), "\n\nHuman:")) << p.prompt_id();
    EXPECT_FALSE(p.reference().empty()) << p.prompt_id();
  }
  const std::string& first = (*prompts)[0].text();
  EXPECT_TRUE(absl::StartsWith(first,
                               "user: what are some pranks with a pen i can do?\nassistant: "
                               "Are you looking for practical joke ideas?\nuser: yep\n"
                               "assistant: Ok, I’ll give you a couple examples"));
  EXPECT_TRUE(absl::EndsWith(first,
                             "\nuser: okay some of these do not have anything to do with "
                             "pens\nassistant:"));
}

TEST(PromptsTest, SplitsADialogueAtTheLastAssistantTurn) {
  auto s = SplitHhDialogue("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?\n\nAssistant: bye");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->first, "user: hi\nassistant: hello\nuser: and?\nassistant:");
  EXPECT_EQ(s->second, " bye");
  EXPECT_EQ(SplitHhDialogue("\n\nHuman: no answer").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PromptsTest, MalformedFilesNameTheLine) {
  auto jsonl = ReadJsonlPrompts(Write("bad.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": 3}\n"));
  EXPECT_THAT(jsonl.status().message(),
              HasSubstr("bad.jsonl:2: needs a non-empty string \"prompt\""));
  auto broken = ReadJsonlPrompts(Write("broken.jsonl", "{\"prompt\": \"a\"}\n\n{nope\n"));
  EXPECT_THAT(broken.status().message(), HasSubstr("broken.jsonl:3: not a JSON object"));
  auto empty = ReadJsonlPrompts(Write("empty.jsonl", "\n"));
  EXPECT_THAT(empty.status().message(), HasSubstr("has no prompts"));
  auto csv = ReadTldrCsv(Write("bad.csv", "a,query\n1,\"x\n2,y\n"));
  EXPECT_THAT(csv.status().message(), HasSubstr("bad.csv:2: a quoted field is not closed"));
  auto nocol = ReadTldrCsv(Write("nocol.csv", "a,b\n1,2\n"));
  EXPECT_THAT(nocol.status().message(), HasSubstr("nocol.csv:1: the header has no 'query' column"));
  auto ragged = ReadTldrCsv(Write("ragged.csv", "a,query\n1,x\n2,y,z\n"));
  EXPECT_THAT(ragged.status().message(), HasSubstr("ragged.csv:3: 3 fields, the header has 2"));
  // Found by fuzz/prompts_jsonl_fuzzer: an empty id was taken as the id.
  auto noid = ReadJsonlPrompts(Write("noid.jsonl", "{\"id\": \"\", \"prompt\": \"p\"}\n"));
  EXPECT_EQ(noid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(noid.status().message(),
              HasSubstr("noid.jsonl:1: \"id\" must be a non-empty string or a number"));
  auto objid = ReadJsonlPrompts(Write("objid.jsonl", "{\"id\": {}, \"prompt\": \"p\"}\n"));
  EXPECT_EQ(objid.status().code(), absl::StatusCode::kInvalidArgument);
  auto numid = ReadJsonlPrompts(Write("numid.jsonl", "{\"id\": 7, \"prompt\": \"p\"}\n"));
  ASSERT_TRUE(numid.ok()) << numid.status();
  EXPECT_EQ((*numid)[0].prompt_id(), "7");
  auto hh = ReadHarmlessJsonl(Write("hh.jsonl", "{\"chosen\": \"\\n\\nHuman: hi\"}\n"));
  EXPECT_THAT(hh.status().message(), HasSubstr("hh.jsonl:1: the transcript has no"));
  EXPECT_EQ(ReadTldrCsv("/nonexistent.csv").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bpo::data
