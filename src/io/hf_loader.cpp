// HF directory loader: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json). Tensor names: include/lrc/io/hf_tensor_map.h. Families:
// kHfFamilies below (model_type -> LlamaConfig's feature flags, lrc/model/llama.h).
#include <cmath>
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

// The families lrc runs: config.json model_type (or architectures[0]) -> the features the
// family always has; the rest (head_dim, rope scaling, sliding window) come from fields.
struct HfFamily {
  const char* model_type;
  const char* architecture;
  bool qkv_bias, qk_norm, fused_proj;
};
constexpr HfFamily kHfFamilies[] = {
    {"llama", "LlamaForCausalLM", false, false, false},
    {"mistral", "MistralForCausalLM", false, false, false},
    {"qwen2", "Qwen2ForCausalLM", true, false, false},
    {"qwen3", "Qwen3ForCausalLM", false, true, false},
    {"phi3", "Phi3ForCausalLM", false, false, true},
    {"mixtral", "MixtralForCausalLM", false, false, false},
};

const HfFamily& find_family(const ConfigReader& r, const std::string& path) {
  std::string seen;
  if (const json* t = r.find("model_type")) {
    for (const HfFamily& f : kHfFamilies)
      if (*t == f.model_type) return f;
    seen = "model_type " + t->dump();
  }
  if (const json* a = r.find("architectures")) {
    if (!a->is_array()) fail(path, "field 'architectures': expected a list");
    for (const auto& x : *a)
      for (const HfFamily& f : kHfFamilies)
        if (x == f.architecture && seen.empty()) return f;
    seen += (seen.empty() ? "" : ", ") + ("architectures " + a->dump());
  }
  std::string known;
  for (const HfFamily& f : kHfFamilies) known += std::string(known.empty() ? "" : ", ") + f.model_type;
  fail(path, "field 'architectures': unknown architecture (" +
                 (seen.empty() ? std::string("none given") : seen) + "; supported model_type: " +
                 known + ")");
}

// A number from an object inside config.json (rope_scaling), naming the field on error.
double sub_number(const json& o, const char* field, const std::string& where,
                  std::optional<double> dflt = std::nullopt) {
  auto it = o.find(field);
  if (it == o.end() || it->is_null()) {
    if (dflt) return *dflt;
    fail(where, std::string("missing field '") + field + "'");
  }
  if (!it->is_number()) fail(where, std::string("field '") + field + "': expected a number");
  return it->get<double>();
}

std::vector<float> sub_floats(const json& o, const char* field, size_t n, const std::string& where) {
  auto it = o.find(field);
  if (it == o.end() || !it->is_array() || it->size() != n)
    fail(where, std::string("field '") + field + "': expected a list of " + std::to_string(n) +
                    " numbers (head_dim / 2)");
  std::vector<float> v;
  for (const auto& x : *it) {
    if (!x.is_number() || !(x.get<double>() > 0))
      fail(where, std::string("field '") + field + "': expected positive numbers");
    v.push_back(static_cast<float>(x.get<double>()));
  }
  return v;
}

// rope_scaling (HF up to 4.x) or rope_parameters (5.x: holds rope_theta too) -> c.rope_scaling.
void parse_rope(const ConfigReader& r, const std::string& path, LlamaConfig& c) {
  const json* rs = r.find("rope_parameters");
  std::string field = "rope_parameters";
  if (!rs) {
    rs = r.find("rope_scaling");
    field = "rope_scaling";
  }
  if (!rs) return;
  if (!rs->is_object()) fail(path, "field '" + field + "': expected an object");
  const std::string where = path + ": field '" + field + "'";
  if (auto th = rs->find("rope_theta"); th != rs->end() && th->is_number())
    c.rope_theta = static_cast<float>(th->get<double>());
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (auto t = rs->find(k); t != rs->end() && t->is_string()) type = t->get<std::string>();
  if (sub_number(*rs, "partial_rotary_factor", where, 1.0) != 1.0)
    fail(where, "partial_rotary_factor != 1 is not supported");
  RopeScaling& s = c.rope_scaling;
  // original_max_position_embeddings: inside the object (llama3, 5.x) or beside it (phi3).
  const double top_orig = r.get_float("original_max_position_embeddings", 0.0);
  if (type == "default") return;
  if (type == "llama3") {
    s.kind = RopeScaling::Kind::Llama3;
    s.factor = static_cast<float>(sub_number(*rs, "factor", where));
    s.low_freq_factor = static_cast<float>(sub_number(*rs, "low_freq_factor", where));
    s.high_freq_factor = static_cast<float>(sub_number(*rs, "high_freq_factor", where));
    s.original = static_cast<int>(sub_number(*rs, "original_max_position_embeddings", where));
    if (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor) || s.original <= 0)
      fail(where, "llama3 scaling needs factor > 0, high_freq_factor > low_freq_factor and "
                  "original_max_position_embeddings > 0");
  } else if (type == "longrope" || type == "su") {
    s.kind = RopeScaling::Kind::LongRope;
    const size_t half = static_cast<size_t>(c.head_dim() / 2);
    s.short_factor = sub_floats(*rs, "short_factor", half, where);
    s.long_factor = sub_floats(*rs, "long_factor", half, where);
    // As HF: the factor is max_position / original, unless (5.x's rope_parameters) `factor`
    // is given; without an original context, original = max_position.
    double orig = sub_number(*rs, "original_max_position_embeddings", where, top_orig);
    double factor = sub_number(*rs, "factor", where, 1.0);
    const bool given = field == "rope_parameters" && rs->contains("factor");
    if (orig > 0) {
      if (!given) factor = static_cast<double>(c.max_seq_len) / orig;
    } else {
      orig = c.max_seq_len;
    }
    s.original = static_cast<int>(orig);
    const double af = factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(orig));
    s.attention_factor = static_cast<float>(sub_number(*rs, "attention_factor", where, af));
  } else {
    fail(where, "rope type '" + type + "' is not supported (supported: default, llama3, longrope)");
  }
}

LlamaConfig parse_config(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) fail(path, "not a JSON object");
  const ConfigReader r{j, path};
  const HfFamily& fam = find_family(r, path);
  const std::string mt = fam.model_type;

  // Features lrc's forward pass does not implement: refuse rather than run wrongly.
  if (const json* act = r.find("hidden_act"); act && *act != "silu")
    fail(path, "field 'hidden_act': " + act->dump() + " is not supported (expected \"silu\")");
  for (const char* f : {"attention_bias", "mlp_bias"})
    if (r.get_bool(f, false))
      fail(path, std::string("field '") + f + "': biases are not supported for " + mt);
  if (r.get_bool("use_sliding_window", false))
    fail(path, "field 'use_sliding_window': sliding-window layers of " + mt + " are not supported");

  LlamaConfig c;
  c.arch = mt;
  c.qkv_bias = fam.qkv_bias;
  c.qk_norm = fam.qk_norm;
  c.fused_proj = fam.fused_proj;
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
  if (r.find("head_dim")) {  // qwen3 / mistral-nemo: heads of another size than dim / n_heads
    const int hd = r.get_int("head_dim");
    if (hd <= 0 || hd % 2 != 0) fail(path, "field 'head_dim': must be positive and even");
    if (hd != c.dim / c.n_heads || c.dim % c.n_heads != 0) c.head_dim_explicit = hd;
  } else if (c.dim % c.n_heads != 0) {
    fail(path, "field 'num_attention_heads': " + std::to_string(c.n_heads) +
                   " does not divide hidden_size " + std::to_string(c.dim));
  }
  parse_rope(r, path, c);
  // Mistral and Phi-3 attend within a window (Phi-3-mini-4k: 2047); the Qwens only with
  // use_sliding_window (refused above).
  if (mt == "mistral" || mt == "phi3" || mt == "mixtral")
    c.sliding_window = r.get_int("sliding_window", 0);
  if (mt == "mixtral") {  // HF MixtralSparseMoeBlock (router_jitter_noise acts in training only)
    c.n_experts = r.get_int("num_local_experts");
    c.n_experts_used = r.get_int("num_experts_per_tok", 2);
    if (c.n_experts < 1 || c.n_experts_used < 1 || c.n_experts_used > c.n_experts)
      fail(path, "field 'num_experts_per_tok': " + std::to_string(c.n_experts_used) +
                     " is not in 1..num_local_experts (" + std::to_string(c.n_experts) + ")");
  }
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
    for (const LayerLinearInfo& t : layer_linears(cfg_)) {
      Linear& l = t.of(L);
      read_slot(*src_, p + t.name + ".weight", {linear_dim(cfg_, t.out), linear_dim(cfg_, t.in)},
                &l.w, &l);
    }
    for (const LayerVector& v : layer_vectors(cfg_, L))
      read_slot(*src_, p + v.name, v.dims(), v.data, v.linear);
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
