// Tokenizers as Hugging Face's slow SentencePiece tokenizers apply them:
//   causal LMs (LlamaTokenizer legacy=False, GemmaTokenizer): [BOS] + pieces;
//   DeBERTa-v3 (DebertaV2Tokenizer): [CLS] a [SEP] b [SEP] with
//   "longest_first" truncation to a max length.
// Thread-safe after Load.
#ifndef BPO_MODEL_TOKENIZER_H_
#define BPO_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bpo::model {

class SentencePiece;

struct PairEncoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;  // 0 up to the first [SEP], then 1
  bool truncated = false;
};

class Tokenizer {
 public:
  // `path` is a SentencePiece model file or a model directory holding
  // tokenizer.model (causal LMs) or spm.model (DeBERTa). Special ids come from
  // the directory's config.json when present, else from the SentencePiece
  // model. NOT_FOUND / INVALID_ARGUMENT name the file.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  ~Tokenizer();

  // Pieces of `text`, with BOS first when `add_bos`.
  std::vector<int64_t> Encode(absl::string_view text, bool add_bos = true) const;
  // Text of `ids`; special (control) tokens are skipped when asked.
  std::string Decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  // DeBERTa: [CLS] a [SEP] b [SEP], at most max_length ids (HF longest_first).
  absl::StatusOr<PairEncoding> EncodePair(absl::string_view a, absl::string_view b,
                                          int64_t max_length) const;

  int64_t vocab_size() const;
  int64_t bos_id() const { return bos_; }
  int64_t eos_id() const { return eos_; }
  int64_t pad_id() const { return pad_; }
  int64_t cls_id() const { return cls_; }
  int64_t sep_id() const { return sep_; }
  const std::string& path() const { return path_; }

 private:
  Tokenizer() = default;
  std::string path_;
  std::unique_ptr<SentencePiece> sp_;
  int64_t bos_ = -1, eos_ = -1, pad_ = 0, cls_ = -1, sep_ = -1;
};

}  // namespace bpo::model

#endif  // BPO_MODEL_TOKENIZER_H_
