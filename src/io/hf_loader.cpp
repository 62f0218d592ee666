// HF Llama directory loader: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json). Tensor names: include/lrc/io/hf_tensor_map.h.
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "lrc/core/error.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/json_file.h"
#include "lrc/io/model_loader.h"
#include "lrc/io/safetensors.h"
#include "lrc/model/layer_linears.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrc {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Typed config fields; every error names config.json and the field.
struct ConfigReader {
  const json& j;
  const std::string& where;

  const json* find(const char* field) const {
    auto it = j.find(field);
    return (it == j.end() || it->is_null()) ? nullptr : &*it;
  }
  int get_int(const char* field, std::optional<int> dflt = std::nullopt) const {
    const json* v = find(field);
    if (!v) {
      if (dflt) return *dflt;
      fail(where, std::string("missing field '") + field + "'");
    }
    if (v->is_array() && !v->empty()) v = &(*v)[0];  // eos_token_id may be a list
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > (1 << 30))
      fail(where,
           std::string("field '") + field + "': expected a non-negative integer, got " + v->dump());
    return v->get<int>();
  }
  double get_float(const char* field, double dflt) const {
    const json* v = find(field);
    if (!v) return dflt;
    if (!v->is_number()) fail(where, std::string("field '") + field + "': expected a number");
    return v->get<double>();
  }
  bool get_bool(const char* field, bool dflt) const {
    const json* v = find(field);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(where, std::string("field '") + field + "': expected true/false");
    return v->get<bool>();
  }
};

LlamaConfig parse_config(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) fail(path, "not a JSON object");
  const ConfigReader r{j, path};

  // Architecture: LlamaForCausalLM, or model_type "llama".
  bool llama = false;
  std::string seen;
  if (const json* a = r.find("architectures")) {
    if (!a->is_array()) fail(path, "field 'architectures': expected a list");
    for (const auto& x : *a) {
      if (x.is_string() && x.get<std::string>() == "LlamaForCausalLM") llama = true;
      if (seen.empty()) seen = "architectures " + x.dump();
    }
  }
  if (const json* t = r.find("model_type")) {
    if (t->is_string() && t->get<std::string>() == "llama") llama = true;
    if (seen.empty()) seen = "model_type " + t->dump();
  }
  if (!llama)
    fail(path, "field 'architectures': unknown architecture (" +
                   (seen.empty() ? std::string("none given") : seen) +
                   "; expected LlamaForCausalLM or model_type \"llama\")");

  // Features lrc's forward pass does not implement: refuse rather than run wrongly.
  if (const json* s = r.find("rope_scaling"))
    fail(path, "field 'rope_scaling': " + s->dump() + " is not supported");
  if (const json* act = r.find("hidden_act"); act && *act != "silu")
    fail(path, "field 'hidden_act': " + act->dump() + " is not supported (expected \"silu\")");
  for (const char* f : {"attention_bias", "mlp_bias"})
    if (r.get_bool(f, false))
      fail(path, std::string("field '") + f + "': biases are not supported");

  LlamaConfig c;
  c.arch = "llama";
  c.dim = r.get_int("hidden_size");
  c.hidden_dim = r.get_int("intermediate_size");
  c.n_layers = r.get_int("num_hidden_layers");
  c.n_heads = r.get_int("num_attention_heads");
  c.n_kv_heads = r.get_int("num_key_value_heads", c.n_heads);
  c.vocab_size = r.get_int("vocab_size");
  c.max_seq_len = r.get_int("max_position_embeddings", 2048);
  c.norm_eps = static_cast<float>(r.get_float("rms_norm_eps", 1e-6));  // HF LlamaConfig default
  c.rope_theta = static_cast<float>(r.get_float("rope_theta", 10000.0));
  c.rope = RopeStyle::HalfSplit;  // HF rotate_half
  c.tied_embeddings = r.get_bool("tie_word_embeddings", false);
  c.bos_id = r.get_int("bos_token_id", 1);
  c.eos_id = r.get_int("eos_token_id", 2);
  // Zero would divide by zero in head_dim() before the tensors are checked (found by fuzzing).
  for (const auto& [field, v] :
       {std::pair{"hidden_size", c.dim}, std::pair{"intermediate_size", c.hidden_dim},
        std::pair{"num_hidden_layers", c.n_layers}, std::pair{"num_attention_heads", c.n_heads},
        std::pair{"num_key_value_heads", c.n_kv_heads}, std::pair{"vocab_size", c.vocab_size}})
    if (v <= 0) fail(path, std::string("field '") + field + "': must be positive, got 0");
  if (c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads != 0)
    fail(path, "field 'num_key_value_heads': " + std::to_string(c.n_kv_heads) +
                   " does not divide num_attention_heads " + std::to_string(c.n_heads));
  if (c.n_heads > 0 && c.dim % c.n_heads != 0)
    fail(path, "field 'num_attention_heads': " + std::to_string(c.n_heads) +
                   " does not divide hidden_size " + std::to_string(c.dim));
  if (const json* hd = r.find("head_dim"); hd && c.n_heads > 0 && *hd != c.dim / c.n_heads)
    fail(path, "field 'head_dim': " + hd->dump() + " != hidden_size / num_attention_heads " +
                   "(not supported)");
  return c;
}

// Which safetensors file holds each tensor; files opened once, on first use.
class TensorSource {
 public:
  explicit TensorSource(const fs::path& dir) : dir_(dir) {
    const fs::path index = dir / "model.safetensors.index.json";
    const fs::path single = dir / "model.safetensors";
    if (fs::exists(index)) {
      index_path_ = index.string();
      const json j = read_json_file(index_path_);
      auto wm = j.find("weight_map");
      if (wm == j.end() || !wm->is_object()) fail(index_path_, "missing object field 'weight_map'");
      for (const auto& [name, file] : wm->items()) {
        if (!file.is_string())
          fail(index_path_, "field 'weight_map': entry '" + name + "' is not a file name");
        weight_map_[name] = file.get<std::string>();
      }
    } else if (fs::exists(single)) {
      single_ = single.string();
    } else {
      fail(dir.string(), "no model.safetensors or model.safetensors.index.json");
    }
  }

  // The file holding `name`; throws naming the index/file and the tensor if it is absent.
  const SafetensorsFile& file_of(const std::string& name) {
    std::string shard = single_;
    if (shard.empty()) {
      auto it = weight_map_.find(name);
      if (it == weight_map_.end()) fail(index_path_, "missing tensor '" + name + "'");
      shard = (dir_ / it->second).string();
      if (!fs::exists(shard))
        fail(index_path_, "missing shard '" + it->second + "' (holds tensor '" + name + "')");
    }
    auto& f = files_[shard];
    if (!f) f = std::make_unique<SafetensorsFile>(shard);
    if (!f->has(name)) fail(shard, "missing tensor '" + name + "'");
    return *f;
  }

  // Forget the pages read from every open shard (a streamed model reads one layer at a time).
  void drop_pages() const {
    for (const auto& [path, f] : files_) f->drop_pages();
  }

 private:
  fs::path dir_;
  std::string single_, index_path_;
  std::map<std::string, std::string> weight_map_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace

namespace {

// Reads one tensor into *data after checking its shape against the config's.
void read_slot(TensorSource& src, const std::string& name, const std::vector<int64_t>& shape,
               std::vector<float>* data, Linear* linear) {
  const SafetensorsFile& f = src.file_of(name);
  const SafetensorInfo& info = f.info(name);
  if (info.shape != shape)
    fail(f.path(), "tensor '" + name + "': shape " + shape_str(info.shape) +
                       " contradicts config.json (expected " + shape_str(shape) + ")");
  *data = f.read_f32(name);
  if (linear) {
    linear->d_out = static_cast<int>(shape[0]);
    linear->d_in = static_cast<int>(shape[1]);
  }
}

// Layer i of an HF directory on demand, from the mapped shards (LlamaModel::layer_source).
class HfLayerSource final : public LayerSource {
 public:
  HfLayerSource(std::string dir, const LlamaConfig& cfg, std::unique_ptr<TensorSource> src)
      : dir_(std::move(dir)), cfg_(cfg), src_(std::move(src)) {}

  void load(int i, LlamaLayer& L) override {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    read_slot(*src_, p + "input_layernorm.weight", {cfg_.dim}, &L.attn_norm, nullptr);
    read_slot(*src_, p + "post_attention_layernorm.weight", {cfg_.dim}, &L.ffn_norm, nullptr);
    for (const LayerLinearInfo& t : kLayerLinears) {
      Linear& l = L.*t.member;
      read_slot(*src_, p + t.name + ".weight", {linear_dim(cfg_, t.out), linear_dim(cfg_, t.in)},
                &l.w, &l);
    }
    validate_layer(cfg_, L, i, dir_);
    src_->drop_pages();
  }

 private:
  std::string dir_;
  LlamaConfig cfg_;
  std::unique_ptr<TensorSource> src_;
};

}  // namespace

LlamaModel load_hf_model(const std::string& dir, bool lazy_layers) {
  const fs::path d(dir);
  LlamaModel m;
  m.cfg = parse_config((d / "config.json").string());
  auto src = std::make_unique<TensorSource>(d);
  const std::string layer_prefix = "model.layers.";
  for (HfTensorSlot& s : hf_tensor_slots(m)) {
    const bool in_layer = s.name.rfind(layer_prefix, 0) == 0;
    if (!lazy_layers || !in_layer) read_slot(*src, s.name, s.shape, s.data, s.linear);
    m.source_dtypes[s.name] = std::string(dtype_name(src->file_of(s.name).info(s.name).dtype));
  }
  if (m.cfg.tied_embeddings) {  // lm_head.weight, if stored anyway, is ignored as HF does
    m.lm_head.d_out = m.cfg.vocab_size;
    m.lm_head.d_in = m.cfg.dim;
    m.lm_head.w = m.tok_embeddings;
  }
  if (lazy_layers) {
    src->drop_pages();
    m.layer_source = std::make_shared<HfLayerSource>(dir, m.cfg, std::move(src));
  }
  validate_model(m, dir);
  return m;
}

}  // namespace lrc
