// Tokenizers against Hugging Face's slow tokenizers (fixture ids must be
// identical), and the real Llama-2 SentencePiece model on real TL;DR text.
#include "model/tokenizer.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace bpo::model {
namespace {

using nlohmann::json;

std::string Fixture(const std::string& arch) {
  return absl::StrCat(BPO_SOURCE_DIR, "/tests/fixtures/", arch);
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

class CausalTokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CausalTokenizerTest, MatchesHuggingFaceIdsAndDecoding) {
  auto tok = Tokenizer::Load(Fixture(GetParam()));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const json ref = ReadJson(Fixture(GetParam()) + "/reference.json");
  EXPECT_EQ((*tok)->bos_id(), ref["bos_id"].get<int64_t>());
  EXPECT_EQ((*tok)->eos_id(), ref["eos_id"].get<int64_t>());
  EXPECT_EQ((*tok)->pad_id(), ref["pad_id"].get<int64_t>());
  const auto texts = ref["texts"].get<std::vector<std::string>>();
  const auto ids = ref["text_ids"].get<std::vector<std::vector<int64_t>>>();
  const auto decoded = ref["decoded"].get<std::vector<std::string>>();
  ASSERT_EQ(texts.size(), ids.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ((*tok)->Encode(texts[i]), ids[i]) << texts[i];
    EXPECT_EQ((*tok)->Decode(ids[i]), decoded[i]);
  }
  // Prompts and responses tokenized separately, as the log-prob fixtures were.
  for (size_t i = 0; i < ref["lp_prompts"].size(); ++i) {
    EXPECT_EQ((*tok)->Encode(ref["lp_prompts"][i].get<std::string>(), false),
              ref["lp_prompt_ids"][i].get<std::vector<int64_t>>());
    EXPECT_EQ((*tok)->Encode(ref["lp_responses"][i].get<std::string>(), false),
              ref["lp_response_ids"][i].get<std::vector<int64_t>>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CausalTokenizerTest, ::testing::Values("llama", "gemma"));

TEST(DebertaTokenizerTest, PairsWithLongestFirstTruncationMatchHuggingFace) {
  auto tok = Tokenizer::Load(Fixture("deberta"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  const json ref = ReadJson(Fixture("deberta") + "/reference.json");
  EXPECT_EQ((*tok)->cls_id(), ref["cls_id"].get<int64_t>());
  EXPECT_EQ((*tok)->sep_id(), ref["sep_id"].get<int64_t>());
  EXPECT_EQ((*tok)->pad_id(), ref["pad_id"].get<int64_t>());
  const int64_t max_length = ref["max_length"].get<int64_t>();
  int truncated = 0;
  for (size_t i = 0; i < ref["pairs"].size(); ++i) {
    const auto& pair = ref["pairs"][i];
    auto enc = (*tok)->EncodePair(pair["prompt"].get<std::string>(),
                                  pair["response"].get<std::string>(), max_length);
    ASSERT_TRUE(enc.ok()) << enc.status();
    EXPECT_EQ(enc->ids, ref["ids"][i].get<std::vector<int64_t>>()) << "pair " << i;
    truncated += enc->truncated;
    // Type ids: 0 through the first [SEP], then 1.
    const auto sep = std::find(enc->ids.begin(), enc->ids.end(), (*tok)->sep_id());
    const size_t first_len = sep - enc->ids.begin() + 1;
    for (size_t k = 0; k < enc->ids.size(); ++k) EXPECT_EQ(enc->type_ids[k], k < first_len ? 0 : 1);
  }
  EXPECT_GE(truncated, 2);
  EXPECT_EQ((*tok)->EncodePair("a", "b", 2).status().code(), absl::StatusCode::kInvalidArgument);
  auto llama = Tokenizer::Load(Fixture("llama"));
  EXPECT_EQ((*llama)->EncodePair("a", "b", 40).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Reads the `query` column of the TL;DR CSV (RFC 4180 quoting).
std::vector<std::string> TldrQueries(size_t limit) {
  std::ifstream in(absl::StrCat(BPO_SOURCE_DIR, "/../shared/data/tldr/oai1b.csv"));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string csv = buf.str();
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < csv.size() && rows.size() <= limit + 1; ++i) {
    const char c = csv[i];
    if (quoted) {
      if (c == '"' && i + 1 < csv.size() && csv[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field);
      field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field);
      field.clear();
      rows.emplace_back();
    } else if (c != '\r') {
      field += c;
    }
  }
  std::vector<std::string> out;
  if (rows.empty()) return out;
  const auto header = rows[0];
  const size_t col = std::find(header.begin(), header.end(), "query") - header.begin();
  for (size_t r = 1; r < rows.size() && out.size() < limit; ++r) {
    if (rows[r].size() > col) out.push_back(rows[r][col]);
  }
  return out;
}

TEST(Llama2TokenizerTest, RealModelRoundTripsRealText) {
  const std::string path =
      absl::StrCat(BPO_SOURCE_DIR, "/../shared/data/tokenizers/llama2-tokenizer.model");
  auto tok = Tokenizer::Load(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 32000);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  // Well-known Llama-2 ids.
  EXPECT_EQ((*tok)->Encode("Hello world"), (std::vector<int64_t>{1, 15043, 3186}));
  const auto queries = TldrQueries(200);
  ASSERT_EQ(queries.size(), 200u);
  size_t tokens = 0;
  for (const std::string& q : queries) {
    const auto ids = (*tok)->Encode(q);
    tokens += ids.size();
    EXPECT_EQ((*tok)->Decode(ids), q);
  }
  EXPECT_GT(tokens, 200u * 100);
  EXPECT_EQ(queries[0].rfind("SUBREDDIT: r/", 0), 0u);
}

TEST(TokenizerTest, BadFilesAreNamed) {
  EXPECT_EQ(Tokenizer::Load("/nonexistent").status().message(),
            "/nonexistent: no SentencePiece model (tokenizer.model or spm.model)");
  auto not_sp = Tokenizer::Load(Fixture("llama") + "/config.json");
  EXPECT_EQ(not_sp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(not_sp.status().message())
                .rfind(Fixture("llama") + "/config.json: not a SentencePiece model", 0),
            0u);
}

}  // namespace
}  // namespace bpo::model
