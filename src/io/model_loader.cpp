// Format dispatch: which loader reads `path`, and which tokenizer goes with it.
#include "lrc/io/model_loader.h"

#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

std::string default_tokenizer(const fs::path& model_path, const std::string& format) {
  const fs::path dir = fs::is_directory(model_path) ? model_path : model_path.parent_path();
  if (format == "llama2c") {
    if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
    return "";
  }
  for (const char* name : {"tokenizer.model", "tokenizer.json"})
    if (fs::exists(dir / name)) return (dir / name).string();
  return "";
}

}  // namespace

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path,
                       bool need_tokenizer) {
  const fs::path p(path);
  if (!fs::exists(p)) fail(path, "no such file or directory");
  LoadedModel out;
  out.path = path;
  if (fs::is_directory(p)) {
    if (!fs::exists(p / "config.json")) fail(path, "directory has no config.json");
    out.format = "hf";
    out.model = load_hf_model(path);
  } else {
    out.format = "llama2c";
    out.model = load_llama2c_model(path);
  }
  std::string tok = tokenizer_path.empty() ? default_tokenizer(p, out.format) : tokenizer_path;
  if (!tok.empty()) {
    out.tokenizer = load_tokenizer(tok);
  } else if (need_tokenizer) {
    fail(path, "no tokenizer found beside the model; pass --tokenizer PATH");
  }
  if (out.tokenizer) {
    out.model.cfg.bos_id = out.tokenizer->bos_id();
    out.model.cfg.eos_id = out.tokenizer->eos_id();
  }
  return out;
}

}  // namespace lrc
