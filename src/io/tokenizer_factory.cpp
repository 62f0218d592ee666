// load_tokenizer: pick the tokenizer implementation by file name. To add a format, add a
// row to kFormats (match on the file name, then load).
#include <filesystem>
#include <memory>

#include "lrc/core/error.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf_loader.h"
#include "lrc/io/tokenizer.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

struct TokenizerFormat {
  const char* description;  // for the "unsupported" message
  bool (*matches)(const fs::path& p);
  std::unique_ptr<Tokenizer> (*load)(const std::string& path);
};

const TokenizerFormat kFormats[] = {
    {"*.gguf (its vocabulary)", [](const fs::path& p) { return is_gguf_file(p.string()); },
     [](const std::string& path) -> std::unique_ptr<Tokenizer> {
       return load_gguf_vocab_tokenizer(path);
     }},
    {"tokenizer.json (HF byte-level BPE)",
     [](const fs::path& p) { return p.extension() == ".json"; },
     [](const std::string& path) -> std::unique_ptr<Tokenizer> {
       return load_bpe_tokenizer_json(path);
     }},
    {"*.model (sentencepiece)", [](const fs::path& p) { return p.extension() == ".model"; },
     [](const std::string& path) { return load_sentencepiece_tokenizer(path); }},
    {"*.bin (llama2.c tokenizer.bin)", [](const fs::path& p) { return p.extension() == ".bin"; },
     [](const std::string& path) { return load_llama2c_tokenizer(path); }},
};

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (!fs::exists(p, ec)) fail(path, "tokenizer file not found");
  if (fs::is_directory(p, ec)) fail(path, "tokenizer path is a directory, expected a file");
  std::string known;
  for (const auto& f : kFormats) {
    if (f.matches(p)) return f.load(path);
    known += (known.empty() ? "" : ", ") + std::string(f.description);
  }
  fail(path, "unsupported tokenizer file (supported: " + known + ")");
}

}  // namespace lrc
