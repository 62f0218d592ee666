// Format dispatch: which loader reads `path`, and which tokenizer goes with it.
#include "lrc/io/model_loader.h"

#include <filesystem>
#include <fstream>

#include "lrc/core/error.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/lrc_checkpoint.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

std::string default_tokenizer(const fs::path& model_path, const std::string& format) {
  if (format == "gguf") return model_path.string();  // its own vocabulary
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
                       bool need_tokenizer, bool lazy_layers) {
  const fs::path p(path);
  if (!fs::exists(p)) fail(path, "no such file or directory");
  LoadedModel out;
  out.path = path;
  nlohmann::json lrc_config;
  if (is_lrc_checkpoint(path)) {
    out.format = "lrc";
    out.model = load_checkpoint(path, &lrc_config);
  } else if (fs::is_directory(p)) {
    if (!fs::exists(p / "config.json")) fail(path, "directory has no config.json");
    out.format = "hf";
    out.model = load_hf_model(path, lazy_layers);
  } else if (is_gguf_file(path)) {
    out.format = "gguf";
    out.model = load_gguf_model(path, lazy_layers);
  } else {
    out.format = "llama2c";
    out.model = load_llama2c_model(path);
  }
  std::string tok = tokenizer_path.empty() ? default_tokenizer(p, out.format) : tokenizer_path;
  if (tokenizer_path.empty() && out.format == "lrc" && lrc_config.contains("tokenizer")) {
    // A quantized checkpoint names its tokenizer: a copy beside it, or the source file.
    const auto& t = lrc_config["tokenizer"];
    tok = t.contains("file") ? (p / t["file"].get<std::string>()).string()
                             : t.value("source", std::string());
  }
  if (!tok.empty()) {
    out.tokenizer = load_tokenizer(tok);
    out.tokenizer_path = tok;
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
