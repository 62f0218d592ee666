// Seed corpora for the libFuzzer targets (tests/fuzz/fuzz_*.cpp): small valid files of every
// format, built from tiny random models so that the fuzzers start from inputs that parse all
// the way through, plus the real tokenizers from ../shared when they are there.
// Usage: fuzz_make_seeds OUTDIR  (writes OUTDIR/<target>/<seed>)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_files.h"
#include "lrc/eval/tasks.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/gguf_writer.h"
#include "lrc/io/hf_writer.h"
#include "lrc/pipeline/checkpoint.h"
#include "lrc/pipeline/quantize_model.h"
#include "support/paths.h"
#include "support/random_calibration.h"
#include "support/random_model.h"
#include "support/small_bpe_vocab.h"

namespace fs = std::filesystem;
using namespace lrc;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << bytes;
}

// Files joined as one fuzz input (fuzz_files.h).
std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += lrc::fuzz::kFuzzSeparator;
    s += parts[i];
  }
  return s;
}

template <typename T>
void append(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// A llama2.c model.bin of cfg's shapes (values are irrelevant to the reader).
std::string llama2c_model(int dim, int hidden, int layers, int heads, int kv, int vocab, int seq) {
  std::string s;
  for (int v : {dim, hidden, layers, heads, kv, vocab, seq}) append<int32_t>(s, v);
  const int64_t hd = dim / heads, kvd = hd * kv;
  const int64_t v = vocab < 0 ? -int64_t{vocab} : vocab;  // negative: an untied classifier
  const int64_t n = v * dim + layers * (2 * dim + 2 * dim * dim + 2 * dim * kvd +
                                        3 * int64_t{hidden} * dim) +
                    dim + seq * hd + (vocab < 0 ? v * dim : 0);
  for (int64_t i = 0; i < n; ++i) append<float>(s, 0.25f);
  return s;
}

// A llama2.c tokenizer.bin: max token length, then (score, length, bytes) per token.
std::string llama2c_tokenizer(int vocab) {
  std::string s;
  append<int32_t>(s, 8);
  for (int i = 0; i < vocab; ++i) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "<0x%02X>", (i - 3) & 0xFF);
    const std::string t = i < 3     ? std::vector<std::string>{"<unk>", "<s>", "</s>"}[i]
                          : i < 259 ? std::string(byte)
                                    : std::string(1, static_cast<char>('a' + i % 26)) + "b";
    append<float>(s, -static_cast<float>(i));
    append<int32_t>(s, static_cast<int32_t>(t.size()));
    s += t;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path tmp = out / "tmp";
  fs::create_directories(tmp);

  // Tiny models: tied and untied, GQA, F32 and BF16 storage.
  LlamaConfig c = test::tiny_config(16, 32, 1, 2, 1, 40, 16);
  LlamaModel m = test::random_model(c, 3);
  save_hf_model(m, (tmp / "hf").string());
  c.tied_embeddings = false;
  LlamaModel untied = test::random_model(c, 4);
  save_hf_model(untied, (tmp / "hf_bf16").string(), DType::BF16);
  save_hf_model(untied, (tmp / "hf_sharded").string(), DType::F16, 2);
  for (const char* d : {"hf", "hf_bf16"}) {
    const std::string st = slurp((tmp / d / "model.safetensors").string());
    put(out / "fuzz_safetensors" / d, st);
    put(out / "fuzz_hf_model" / d, join({slurp((tmp / d / "config.json").string()), st}));
  }
  for (const auto& e : fs::directory_iterator(tmp / "hf_sharded"))
    if (e.path().extension() == ".safetensors")
      put(out / "fuzz_safetensors" / ("shard-" + e.path().filename().string()), slurp(e.path().string()));
  // An index whose single shard is model.safetensors (the names fuzz_hf_model writes).
  put(out / "fuzz_hf_model" / "indexed",
      join({slurp((tmp / "hf" / "config.json").string()), slurp((tmp / "hf" / "model.safetensors").string()),
            R"({"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model.safetensors",
                "model.norm.weight": "model.safetensors"}})"}));

  // lrc checkpoints: RTN and LRC (low-rank tensors), with a KV-cache spec.
  const CalibrationSet calib = test::random_calibration(40, 2, 8, 1);
  for (const char* method : {"rtn", "lrc"}) {
    LlamaModel q = test::random_model(test::tiny_config(16, 32, 1, 2, 1, 40, 16), 5);
    QuantizeOptions opt;
    opt.method = std::string(method) == "lrc" ? QuantMethod::LRC : QuantMethod::RTN;
    opt.rank = 4;
    opt.kv_bits = 4;
    const QuantizeReport rep = quantize_model(q, calib, opt);
    CheckpointInfo info;
    info.options = opt;
    info.calib = &calib;
    info.report = &rep;
    const fs::path dir = tmp / (std::string("ckpt_") + method);
    save_checkpoint(q, dir.string(), info);
    const std::string st = slurp((dir / "model.safetensors").string());
    put(out / "fuzz_checkpoint" / method, join({slurp((dir / "lrc_config.json").string()), st}));
    put(out / "fuzz_safetensors" / (std::string("ckpt_") + method), st);
  }

  // GGUF without and with a vocabulary.
  const BpeVocab vocab = test::small_bpe_vocab();
  save_gguf_model(m, nullptr, (tmp / "m.gguf").string());
  put(out / "fuzz_gguf" / "tiny", slurp((tmp / "m.gguf").string()));
  LlamaModel mv = test::random_model(test::tiny_config(16, 32, 1, 2, 1, static_cast<int>(vocab.tokens.size()), 16), 6);
  save_gguf_model(mv, &vocab, (tmp / "mv.gguf").string());
  put(out / "fuzz_gguf" / "tiny_vocab", slurp((tmp / "mv.gguf").string()));

  // llama2.c: model and tokenizer (the real tokenizer.bin too, when ../shared is there).
  put(out / "fuzz_llama2c" / "tiny", join({llama2c_model(16, 32, 1, 2, 1, 280, 16), llama2c_tokenizer(280)}));
  put(out / "fuzz_llama2c" / "tiny_untied", join({llama2c_model(16, 32, 1, 2, 2, -280, 8), llama2c_tokenizer(280)}));
  const std::string real_tok_bin = test::shared("models/llama-22m-debtext/llama2c/tokenizer.bin");
  if (fs::exists(real_tok_bin))
    put(out / "fuzz_llama2c" / "real_tokenizer", join({std::string(), slurp(real_tok_bin)}));

  // Tokenizers: byte 0 chooses the kind (fuzz_tokenizer.cpp).
  put(out / "fuzz_tokenizer" / "bpe_json", std::string(1, '\0') + bpe_tokenizer_json(vocab));
  const std::string real_spm = test::shared("models/llama-22m-debtext/tokenizer.model");
  if (fs::exists(real_spm)) put(out / "fuzz_tokenizer" / "sentencepiece", std::string(1, '\1') + slurp(real_spm));

  // Task files of both kinds.
  put(out / "fuzz_tasks" / "mc",
      R"({"context": "The cat sat on the", "choices": ["mat", "sky"], "label": 0})" "\n"
      R"({"context": "Q: 2+2?\nA:", "choices": ["4", "5", "22"], "label": 0})" "\n");
  put(out / "fuzz_tasks" / "lastword",
      R"({"context": "He opened the door and saw his", "target": "brother"})" "\n");

  fs::remove_all(tmp);
  return 0;
}
