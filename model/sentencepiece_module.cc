// libbpo_spm.so: the only code that links libsentencepiece (sentencepiece.h
// explains why). No Abseil header may be included here.
#include <sentencepiece_processor.h>

#include "model/sentencepiece.h"

namespace bpo::model {
namespace {

class SentencePieceImpl final : public SentencePiece {
 public:
  sentencepiece::SentencePieceProcessor sp;

  std::vector<int> Encode(const std::string& text) const override { return sp.EncodeAsIds(text); }
  std::string Decode(const std::vector<int>& ids) const override { return sp.DecodeIds(ids); }
  int Size() const override { return sp.GetPieceSize(); }
  int PieceToId(const std::string& piece) const override { return sp.PieceToId(piece); }
  std::string IdToPiece(int id) const override { return sp.IdToPiece(id); }
  bool IsControl(int id) const override { return sp.IsControl(id); }
  bool IsUnknown(int id) const override { return sp.IsUnknown(id); }
  int bos_id() const override { return sp.bos_id(); }
  int eos_id() const override { return sp.eos_id(); }
  int pad_id() const override { return sp.pad_id(); }
  int unk_id() const override { return sp.unk_id(); }
};

}  // namespace
}  // namespace bpo::model

extern "C" __attribute__((visibility("default"))) bpo::model::SentencePiece* bpo_spm_load(
    const char* path, std::string* error) {
  auto impl = std::make_unique<bpo::model::SentencePieceImpl>();
  const auto status = impl->sp.Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return impl.release();
}
