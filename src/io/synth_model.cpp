// Synthetic HF Llama directories (recipe in include/lrc/io/synth_model.h): tensors are drawn
// a chunk of rows at a time, converted to bf16 and streamed into the shard, so memory stays at
// one chunk whatever the model size.
#include "lrc/io/synth_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/io/bpe_tokenizer.h"
#include "lrc/io/byte_level.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/hf_writer.h"
#include "lrc/io/json_file.h"
#include "lrc/io/safetensors_writer.h"
#include "lrc/io/tokenizer.h"

namespace fs = std::filesystem;

namespace lrc {

namespace {

LlamaConfig preset_config(int dim, int hidden, int layers, int heads, int kv, int vocab,
                          int max_seq, float theta, bool tied, int bos, int eos) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.vocab_size = vocab;
  c.max_seq_len = max_seq;
  c.norm_eps = 1e-5f;
  c.rope_theta = theta;
  c.rope = RopeStyle::HalfSplit;
  c.tied_embeddings = tied;
  c.bos_id = bos;
  c.eos_id = eos;
  return c;
}

// cfg as family `arch` with its features set by `set`.
template <class F>
LlamaConfig with_family(LlamaConfig c, const char* arch, F&& set) {
  c.arch = arch;
  set(c);
  return c;
}

// splitmix64: the generator and the key mixer (Steele et al.; passes BigCrush as a stream).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// A stream of uniforms and Gaussians keyed by (key, row): independent of thread and order.
class RowRng {
 public:
  RowRng(uint64_t key, uint64_t row) : s_(mix64(key ^ mix64(row + 0x9e3779b97f4a7c15ull))) {}
  uint64_t next() { return mix64(s_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  // Two N(0, 1) draws (Box-Muller, 32-bit uniforms: tails to 6.6 sigma).
  void gauss2(float* a, float* b) {
    const uint64_t r = next();
    const float u1 = (static_cast<float>(r >> 40) + 1.0f) * 0x1.0p-24f;
    const float u2 = static_cast<float>((r >> 16) & 0xffffff) * 0x1.0p-24f;
    const float rad = std::sqrt(-2.0f * std::log(u1));
    const float th = 6.28318530717958648f * u2;
    *a = rad * std::cos(th);
    *b = rad * std::sin(th);
  }

 private:
  uint64_t s_;
};

// k distinct indices of [0, n) (partial Fisher-Yates) with a gain each, log-uniform in [10, 100].
std::vector<float> outlier_gains(int64_t n, uint64_t key, bool enabled) {
  std::vector<float> gain(static_cast<size_t>(n), 1.0f);
  if (!enabled) return gain;
  const int64_t k = std::min<int64_t>(n, std::max<int64_t>(2, std::llround(0.002 * n)));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  RowRng rng(key, 0);
  for (int64_t i = 0; i < k; ++i) {
    const int64_t j = i + static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n - i));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
    gain[static_cast<size_t>(idx[static_cast<size_t>(i)])] =
        static_cast<float>(std::pow(10.0, 1.0 + rng.uniform()));
  }
  return gain;
}

enum class Kind { Embedding, LayerNorm, FinalNorm, Linear, LinearOutlierRows, Bias };

Kind kind_of(const std::string& name) {
  if (name == "model.embed_tokens.weight") return Kind::Embedding;
  // qwen3's per-head q/k norms: like the final norm (no hidden-channel gains: head_dim long).
  if (name == "model.norm.weight" || name.ends_with("_norm.weight")) return Kind::FinalNorm;
  if (name.ends_with(".bias")) return Kind::Bias;  // qwen2's q/k/v biases
  if (name.ends_with("layernorm.weight")) return Kind::LayerNorm;
  if (name.ends_with("v_proj.weight") || name.ends_with("up_proj.weight"))
    return Kind::LinearOutlierRows;
  return Kind::Linear;
}

// Draws one tensor by the recipe and hands it to `sink` in chunks of whole rows as bf16.
class TensorDrawer {
 public:
  explicit TensorDrawer(const LlamaConfig& cfg, const SynthOptions& opt)
      : seed_key_(mix64(opt.seed ^ 0x6c72632d73796e74ull)),  // "lrc-synt"
        outliers_(opt.outliers),
        channel_gain_(outlier_gains(cfg.dim, seed_key_ ^ fnv1a("hidden channels"), opt.outliers)) {}

  template <class Sink>
  void draw(const std::string& name, const std::vector<int64_t>& shape, Sink&& sink) {
    const int64_t rows = shape.size() == 2 ? shape[0] : 1;
    const int64_t cols = shape.back();
    const Kind kind = kind_of(name);
    const uint64_t key = seed_key_ ^ fnv1a(name);
    std::vector<float> row_gain;
    if (kind == Kind::LinearOutlierRows) row_gain = outlier_gains(rows, key ^ 0x726f7773ull, outliers_);
    float sigma = 1.0f, mean = 0.0f;
    const float* col_gain = nullptr;
    switch (kind) {
      case Kind::Embedding:
        sigma = 0.02f;
        col_gain = channel_gain_.data();
        break;
      case Kind::LayerNorm:
        mean = 1.0f, sigma = 0.1f;
        col_gain = channel_gain_.data();
        break;
      case Kind::FinalNorm:
        mean = 1.0f, sigma = 0.1f;
        break;
      case Kind::Bias:
        sigma = 0.1f;
        break;
      case Kind::Linear:
      case Kind::LinearOutlierRows:
        sigma = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cols)));
        break;
    }
    const bool norm = kind == Kind::LayerNorm || kind == Kind::FinalNorm;
    const int64_t chunk_rows = std::max<int64_t>(1, (int64_t{16} << 20) / cols);  // 32 MB bf16
    buf_.resize(static_cast<size_t>(std::min(rows, chunk_rows) * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t nr = std::min(chunk_rows, rows - r0);
#pragma omp parallel for schedule(static)
      for (int64_t r = r0; r < r0 + nr; ++r) {
        RowRng rng(key, static_cast<uint64_t>(r));
        uint16_t* out = buf_.data() + (r - r0) * cols;
        const float rg = row_gain.empty() ? 1.0f : row_gain[static_cast<size_t>(r)];
        for (int64_t c = 0; c < cols; c += 2) {
          float g[2];
          rng.gauss2(&g[0], &g[1]);
          for (int64_t t = 0; t < 2 && c + t < cols; ++t) {
            float v = mean + sigma * g[t];
            if (norm) v = std::fabs(v);
            if (col_gain) v *= col_gain[c + t];
            out[c + t] = f32_to_bf16(v * rg);
          }
        }
      }
      sink(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf_.data()),
                                    static_cast<size_t>(nr * cols) * 2));
    }
  }

 private:
  uint64_t seed_key_;
  bool outliers_;
  std::vector<float> channel_gain_;
  std::vector<uint16_t> buf_;
};

std::string gb(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return b;
}

}  // namespace

std::string byte_tokenizer_json() {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
  v.tokens.push_back("<s>");
  v.tokens.push_back("</s>");
  v.token_types.assign(256, static_cast<int>(BpeTokenType::Normal));
  v.token_types.push_back(static_cast<int>(BpeTokenType::Control));
  v.token_types.push_back(static_cast<int>(BpeTokenType::Control));
  v.pre = "gpt2";
  v.bos_id = 256;
  v.eos_id = 257;
  v.add_bos = true;
  return bpe_tokenizer_json(v);
}


const std::vector<SynthPreset>& synth_presets() {
  // Shapes from each model's published config.json (SmolLM2: its GGUF, test_io_gguf_smollm2).
  static const std::vector<SynthPreset> p = {
      {"llama2-7b", preset_config(4096, 11008, 32, 32, 32, 32000, 4096, 10000.f, false, 1, 2)},
      {"llama2-13b", preset_config(5120, 13824, 40, 40, 40, 32000, 4096, 10000.f, false, 1, 2)},
      {"llama2-70b", preset_config(8192, 28672, 80, 64, 8, 32000, 4096, 10000.f, false, 1, 2)},
      {"llama3-8b",
       preset_config(4096, 14336, 32, 32, 8, 128256, 8192, 500000.f, false, 128000, 128001)},
      {"smollm2-135m", preset_config(576, 1536, 30, 9, 3, 49152, 8192, 100000.f, true, 1, 2)},
      // Mistral-7B-v0.1 (sliding window 4096), Qwen2.5-7B, Qwen3-8B, Phi-3-mini-4k.
      {"mistral-7b",
       with_family(preset_config(4096, 14336, 32, 32, 8, 32000, 32768, 10000.f, false, 1, 2),
                   "mistral", [](LlamaConfig& c) { c.sliding_window = 4096; })},
      {"qwen2.5-7b", with_family(preset_config(3584, 18944, 28, 28, 4, 152064, 32768, 1e6f, false,
                                               151643, 151643),
                                 "qwen2", [](LlamaConfig& c) { c.qkv_bias = true; })},
      {"qwen3-8b", with_family(preset_config(4096, 12288, 36, 32, 8, 151936, 40960, 1e6f, false,
                                             151643, 151645),
                               "qwen3", [](LlamaConfig& c) { c.qk_norm = true; })},
      {"phi3-mini",
       with_family(
           preset_config(3072, 8192, 32, 32, 32, 32064, 4096, 10000.f, false, 1, 32000), "phi3",
           [](LlamaConfig& c) {
             c.fused_proj = true;
             c.sliding_window = 2047;
           })},
      // Mixtral-8x7B-v0.1: 8 experts of Mistral-7B's FFN shape, top-2, no sliding window.
      {"mixtral-8x7b",
       with_family(
           preset_config(4096, 14336, 32, 32, 8, 32000, 32768, 1e6f, false, 1, 2), "mixtral",
           [](LlamaConfig& c) {
             c.n_experts = 8;
             c.n_experts_used = 2;
           })},
  };
  return p;
}

const SynthPreset& synth_preset(const std::string& name) {
  std::string known;
  for (const auto& p : synth_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  fail("--preset", "unknown preset '" + name + "' (known: " + known + ")");
}

SynthReport write_synth_model(const LlamaConfig& cfg, const std::string& dir,
                              const SynthOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (cfg.n_layers < 1) fail(dir, "synth: n_layers must be >= 1");
  if (opt.shard_bytes == 0) fail(dir, "synth: shard_bytes must be > 0");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) fail(dir, "cannot create directory");

  // The tensor list and its shards (greedy: a new shard when the next tensor would overflow).
  LlamaModel shapes;  // no weights: only the names and shapes of hf_tensor_slots
  shapes.cfg = cfg;
  std::vector<SafetensorsEntry> all;
  for (const auto& s : hf_tensor_slots(shapes)) all.push_back({s.name, DType::BF16, s.shape});
  std::vector<std::vector<SafetensorsEntry>> shards(1);
  uint64_t in_shard = 0;
  SynthReport rep;
  for (const auto& e : all) {
    const uint64_t n = e.n_bytes();
    if (!shards.back().empty() && in_shard + n > opt.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(e);
    in_shard += n;
    rep.weight_bytes += n;
    rep.n_params += static_cast<int64_t>(n / 2);
  }

  // Files of an earlier synth run that this one would not overwrite would confuse the loader.
  const std::regex ours(R"(model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  for (const auto& f : fs::directory_iterator(dir, ec))
    if (std::regex_match(f.path().filename().string(), ours)) fs::remove(f.path(), ec);
  fs::remove(fs::path(dir) / "config.json", ec);

  const int n_shards = static_cast<int>(shards.size());
  if (opt.progress)
    std::fprintf(opt.progress, "synth: %s: %lld parameters, %s of bf16 in %d shard%s\n",
                 dir.c_str(), static_cast<long long>(rep.n_params), gb(rep.weight_bytes).c_str(),
                 n_shards, n_shards == 1 ? "" : "s");
  TensorDrawer drawer(cfg, opt);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t done = 0;
  for (int k = 0; k < n_shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
    const std::string file = n_shards == 1 ? "model.safetensors" : name;
    SafetensorsStreamWriter w((fs::path(dir) / file).string(), shards[k], {{"format", "pt"}});
    for (const auto& e : shards[k]) {
      drawer.draw(e.name, e.shape, [&](std::span<const uint8_t> b) { w.append(b); });
      weight_map[e.name] = file;
      done += e.n_bytes();
      if (opt.progress && (e.name.ends_with("down_proj.weight") || e.name.ends_with(".w2.weight")))
        std::fprintf(opt.progress, "synth: %s (%s of %s, %.0f s)\n", e.name.c_str(),
                     gb(done).c_str(), gb(rep.weight_bytes).c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    w.finish();
    rep.files.push_back(file);
  }
  if (n_shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", rep.weight_bytes}};
    index["weight_map"] = weight_map;
    write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(1));
    rep.files.push_back("model.safetensors.index.json");
  }

  // The tokenizer: generated, or the given file (its vocabulary fitting the model's).
  for (const char* stale : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"})
    fs::remove(fs::path(dir) / stale, ec);
  if (opt.tokenizer.empty()) {
    if (cfg.vocab_size < 258)
      fail(dir, "synth: the generated byte tokenizer needs vocab_size >= 258, config has " +
                    std::to_string(cfg.vocab_size));
    write_file_atomic((fs::path(dir) / "tokenizer.json").string(), byte_tokenizer_json());
    // Named here, or the loader would take bos/eos from config.json's ids (the real model's).
    write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(),
                      R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})"
                      "\n");
    rep.files.push_back("tokenizer.json");
    rep.files.push_back("tokenizer_config.json");
  } else {
    const fs::path src(opt.tokenizer);
    const std::string ext = src.extension().string();
    if (ext != ".model" && ext != ".json")
      fail(opt.tokenizer, "--tokenizer: expected a tokenizer.model or tokenizer.json file");
    const int vocab = load_tokenizer(opt.tokenizer)->vocab_size();
    if (vocab > cfg.vocab_size)
      fail(opt.tokenizer, "--tokenizer: vocabulary of " + std::to_string(vocab) +
                              " tokens exceeds the model's vocab_size " +
                              std::to_string(cfg.vocab_size));
    const std::string dst = "tokenizer" + ext;
    fs::copy_file(src, fs::path(dir) / dst, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(opt.tokenizer, "cannot copy to " + dir + ": " + ec.message());
    rep.files.push_back(dst);
    if (ext == ".json" && fs::exists(src.parent_path() / "tokenizer_config.json")) {
      fs::copy_file(src.parent_path() / "tokenizer_config.json",
                    fs::path(dir) / "tokenizer_config.json", fs::copy_options::overwrite_existing,
                    ec);
      if (ec) fail(opt.tokenizer, "cannot copy tokenizer_config.json: " + ec.message());
      rep.files.push_back("tokenizer_config.json");
    }
  }
  // config.json last: a directory cut short by an error has none, so nothing loads it.
  write_file_atomic((fs::path(dir) / "config.json").string(), hf_config_json(cfg));
  rep.files.push_back("config.json");
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace lrc
