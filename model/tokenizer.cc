#include "model/tokenizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "model/json_reader.h"
#include "model/sentencepiece.h"

namespace bpo::model {

namespace fs = std::filesystem;

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  fs::path model_file(path);
  fs::path dir;
  std::error_code ec;
  if (fs::is_directory(model_file, ec)) {
    dir = model_file;
    model_file = fs::exists(dir / "tokenizer.model") ? dir / "tokenizer.model" : dir / "spm.model";
  }
  if (!fs::exists(model_file, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": no SentencePiece model (tokenizer.model or spm.model)"));
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->path_ = model_file.string();
  std::string error;
  t->sp_ = SentencePiece::Load(t->path_, &error);
  if (t->sp_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(t->path_, ": not a SentencePiece model: ", error));
  }
  t->bos_ = t->sp_->bos_id();
  t->eos_ = t->sp_->eos_id();
  t->pad_ = t->sp_->pad_id() >= 0 ? t->sp_->pad_id() : 0;
  // DeBERTa-v3 keeps [CLS]/[SEP] as pieces of its vocabulary.
  const int cls = t->sp_->PieceToId("[CLS]"), sep = t->sp_->PieceToId("[SEP]");
  if (!t->sp_->IsUnknown(cls) && !t->sp_->IsUnknown(sep)) {
    t->cls_ = cls;
    t->sep_ = sep;
    const int pad = t->sp_->PieceToId("[PAD]");
    if (!t->sp_->IsUnknown(pad)) t->pad_ = pad;
  }
  // config.json, when beside it, is what the model was trained with.
  if (!dir.empty() && fs::exists(dir / "config.json")) {
    auto text = ReadTextFile((dir / "config.json").string());
    if (!text.ok()) return text.status();
    const auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object()) {
      JsonReader r(j, (dir / "config.json").string());
      t->bos_ = r.Int("bos_token_id", t->bos_);
      if (!(j.contains("eos_token_id") && j["eos_token_id"].is_array())) {
        t->eos_ = r.Int("eos_token_id", t->eos_);
      } else if (!j["eos_token_id"].empty()) {
        t->eos_ = j["eos_token_id"][0].get<int64_t>();
      }
      t->pad_ = r.Int("pad_token_id", t->pad_);
      BPO_RETURN_IF_JSON_ERROR(r);
    }
  }
  const int64_t n = t->sp_->Size();
  for (const auto& [name, id] :
       {std::pair<const char*, int64_t>{"bos", t->bos_}, {"eos", t->eos_}, {"pad", t->pad_}}) {
    if (id >= n) {
      return absl::InvalidArgumentError(absl::StrCat(t->path_, ": ", name, " token id ", id,
                                                     " is outside the ", n,
                                                     "-piece vocabulary "
                                                     "(mismatched tokenizer and config.json?)"));
    }
  }
  return t;
}

int64_t Tokenizer::vocab_size() const { return sp_->Size(); }

std::vector<int64_t> Tokenizer::Encode(absl::string_view text, bool add_bos) const {
  const std::vector<int> pieces = sp_->Encode(std::string(text));
  std::vector<int64_t> out;
  out.reserve(pieces.size() + 1);
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  out.insert(out.end(), pieces.begin(), pieces.end());
  return out;
}

std::string Tokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<int> keep;
  keep.reserve(ids.size());
  const int64_t n = sp_->Size();
  for (int64_t id : ids) {
    if (id < 0 || id >= n) continue;
    if (skip_special && (sp_->IsControl(static_cast<int>(id)) || id == bos_ || id == eos_ ||
                         id == pad_ || id == cls_ || id == sep_)) {
      continue;
    }
    keep.push_back(static_cast<int>(id));
  }
  return sp_->Decode(keep);
}

absl::StatusOr<PairEncoding> Tokenizer::EncodePair(absl::string_view a, absl::string_view b,
                                                   int64_t max_length) const {
  if (cls_ < 0 || sep_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": has no [CLS]/[SEP] pieces: not a DeBERTa tokenizer"));
  }
  if (max_length < 4) {
    return absl::InvalidArgumentError(absl::StrCat("max_length ", max_length, " is below 4"));
  }
  std::vector<int> first = sp_->Encode(std::string(a));
  std::vector<int> second = sp_->Encode(std::string(b));
  PairEncoding out;
  // HF "longest_first": first shorten the longer side to the other's length,
  // then split what is left to remove, the second side taking the odd one.
  const int64_t excess = static_cast<int64_t>(first.size() + second.size()) + 3 - max_length;
  if (excess > 0) {
    out.truncated = true;
    const int64_t la = first.size(), lb = second.size();
    const int64_t first_remove = std::min<int64_t>(std::abs(la - lb), excess);
    const int64_t second_remove = excess - first_remove;
    int64_t from_a, from_b;
    if (la > lb) {
      from_a = first_remove + second_remove / 2;
      from_b = second_remove - second_remove / 2;
    } else {
      from_a = second_remove / 2;
      from_b = first_remove + second_remove - second_remove / 2;
    }
    first.resize(std::max<int64_t>(0, la - from_a));
    second.resize(std::max<int64_t>(0, lb - from_b));
  }
  out.ids.push_back(cls_);
  out.ids.insert(out.ids.end(), first.begin(), first.end());
  out.ids.push_back(sep_);
  out.type_ids.assign(out.ids.size(), 0);
  out.ids.insert(out.ids.end(), second.begin(), second.end());
  out.ids.push_back(sep_);
  out.type_ids.resize(out.ids.size(), 1);
  return out;
}

}  // namespace bpo::model
