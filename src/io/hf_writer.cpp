// HF directory writer (the inverse of hf_loader.cpp), for every family lrc loads.
#include "lrc/io/hf_writer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "lrc/core/error.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/json_file.h"
#include "lrc/io/rope_permute.h"
#include "lrc/io/safetensors_writer.h"

namespace fs = std::filesystem;

namespace lrc {

std::string hf_config_json(const LlamaConfig& c) {
  nlohmann::ordered_json j;
  // The family's class name and model_type (the loader's kHfFamilies read them back).
  static const std::pair<const char*, const char*> kArch[] = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
      {"phi3", "Phi3ForCausalLM"},   {"mixtral", "MixtralForCausalLM"}};
  const char* arch = nullptr;
  for (const auto& [type, cls] : kArch)
    if (c.arch == type) arch = cls;
  if (!arch) fail("hf_config_json", "architecture '" + c.arch + "' has no HF form");
  j["architectures"] = {arch};
  j["model_type"] = c.arch;
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
  if (c.head_dim_explicit > 0) j["head_dim"] = c.head_dim_explicit;
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  if (c.moe()) {
    j["num_local_experts"] = c.n_experts;
    j["num_experts_per_tok"] = c.n_experts_used;
  }
  const RopeScaling& r = c.rope_scaling;  // in the 4.x spelling, as on the Hub
  if (r.kind == RopeScaling::Kind::Llama3)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", r.factor},
                         {"low_freq_factor", r.low_freq_factor},
                         {"high_freq_factor", r.high_freq_factor},
                         {"original_max_position_embeddings", r.original}};
  if (r.kind == RopeScaling::Kind::LongRope) {
    j["rope_scaling"] = {{"type", "longrope"},
                         {"short_factor", r.short_factor},
                         {"long_factor", r.long_factor},
                         {"attention_factor", r.attention_factor}};
    j["original_max_position_embeddings"] = r.original;
  }
  if (r.kind == RopeScaling::Kind::FreqFactors)
    fail("hf_config_json", "GGUF frequency factors (rope_freqs) have no config.json form");
  // qkv_bias / qk_norm / fused_proj follow from model_type.
  return j.dump(1) + "\n";
}

void save_hf_model(const LlamaModel& m, const std::string& dir, DType dtype, int n_shards) {
  validate_model(m, "save_hf_model");
  if (n_shards < 1) fail(dir, "n_shards must be >= 1");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) fail(dir, "cannot create directory");

  const auto views = hf_tensor_views(m);
  const int hd = m.cfg.head_dim();
  const size_t per_shard = (views.size() + n_shards - 1) / static_cast<size_t>(n_shards);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  uint64_t total = 0;
  for (int k = 0; k < n_shards; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
    const std::string file = n_shards == 1 ? "model.safetensors" : name;
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    const size_t lo = k * per_shard, hi = std::min(views.size(), lo + per_shard);
    for (size_t i = lo; i < hi; ++i) {
      const HfTensorView& v = views[i];
      const bool is_qk = v.name.ends_with("q_proj.weight") || v.name.ends_with("k_proj.weight");
      if (is_qk && m.cfg.rope == RopeStyle::Interleaved) {
        const int heads = static_cast<int>(v.shape[0]) / hd;
        const auto p = interleaved_to_halfsplit_rows(*v.data, heads, hd, m.cfg.dim);
        w.add_f32(v.name, v.shape, p, dtype);
      } else {
        w.add_f32(v.name, v.shape, *v.data, dtype);
      }
      weight_map[v.name] = file;
      total += v.data->size() * dtype_size(dtype);
    }
    w.write((fs::path(dir) / file).string());
  }
  if (n_shards > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), index.dump(1));
  }
  write_file_atomic((fs::path(dir) / "config.json").string(), hf_config_json(m.cfg));
}

}  // namespace lrc
