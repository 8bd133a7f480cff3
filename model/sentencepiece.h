// libsentencepiece behind a wall.
//
// Debian's libsentencepiece carries its own copy of protobuf-lite and exports
// its symbols. Linked into a process that also loads libprotobuf (LibTorch
// and gRPC do), the two copies bind to each other's functions and the process
// crashes during static initialisation. So bpo never links it: a small module
// (libbpo_spm.so, sentencepiece_module.cc) links it and is loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND), which keeps its protobuf copy out of the
// global symbol scope and binds it to itself. Its header also defines
// absl::string_view, so no Abseil header may appear there either.
//
// This header uses only the standard library; the interface is virtual, so no
// symbol of the module is looked up besides its factory.
#ifndef BPO_MODEL_SENTENCEPIECE_H_
#define BPO_MODEL_SENTENCEPIECE_H_

#include <memory>
#include <string>
#include <vector>

namespace bpo::model {

class SentencePiece {
 public:
  // nullptr with *error set when the module or the model cannot be loaded.
  // The module is found at BPO_SPM_MODULE (environment), else where the build
  // put it, else beside the executable.
  static std::unique_ptr<SentencePiece> Load(const std::string& path, std::string* error);
  virtual ~SentencePiece() = default;

  virtual std::vector<int> Encode(const std::string& text) const = 0;
  virtual std::string Decode(const std::vector<int>& ids) const = 0;
  virtual int Size() const = 0;
  virtual int PieceToId(const std::string& piece) const = 0;  // the unk id when absent
  virtual std::string IdToPiece(int id) const = 0;
  virtual bool IsControl(int id) const = 0;
  virtual bool IsUnknown(int id) const = 0;
  virtual int bos_id() const = 0;  // -1 when the model has none
  virtual int eos_id() const = 0;
  virtual int pad_id() const = 0;
  virtual int unk_id() const = 0;
};

// The module's factory, looked up by name.
using SentencePieceFactory = SentencePiece* (*)(const char* path, std::string* error);
inline constexpr char kSentencePieceFactory[] = "bpo_spm_load";

}  // namespace bpo::model

#endif  // BPO_MODEL_SENTENCEPIECE_H_
