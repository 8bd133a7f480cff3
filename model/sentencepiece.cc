#include "model/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

namespace bpo::model {
namespace {

std::string ExecutableDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// dlopen()s the module once; returns its factory or nullptr with *error.
SentencePieceFactory LoadFactory(std::string* error) {
  static std::once_flag once;
  static SentencePieceFactory factory = nullptr;
  static std::string load_error;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("BPO_SPM_MODULE")) candidates.push_back(env);
#ifdef BPO_SPM_MODULE_PATH
    candidates.push_back(BPO_SPM_MODULE_PATH);
#endif
    candidates.push_back(ExecutableDir() + "/libbpo_spm.so");
    candidates.push_back(ExecutableDir() + "/../lib/libbpo_spm.so");
    int flags = RTLD_NOW | RTLD_LOCAL;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    flags |= RTLD_DEEPBIND;  // sanitizer runtimes refuse it
#endif
    for (const std::string& path : candidates) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) continue;
      void* handle = dlopen(path.c_str(), flags);
      if (handle == nullptr) {
        load_error = std::string("cannot load ") + path + ": " + dlerror();
        return;
      }
      factory = reinterpret_cast<SentencePieceFactory>(dlsym(handle, kSentencePieceFactory));
      if (factory == nullptr) load_error = path + ": no " + kSentencePieceFactory;
      return;
    }
    load_error = "libbpo_spm.so not found (set BPO_SPM_MODULE to its path)";
  });
  if (factory == nullptr) *error = load_error;
  return factory;
}

}  // namespace

std::unique_ptr<SentencePiece> SentencePiece::Load(const std::string& path, std::string* error) {
  SentencePieceFactory factory = LoadFactory(error);
  if (factory == nullptr) return nullptr;
  return std::unique_ptr<SentencePiece>(factory(path.c_str(), error));
}

}  // namespace bpo::model
