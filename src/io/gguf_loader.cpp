// LlamaModel + BpeTokenizer from a GGUF file (mapping of names in include/lrc/io/gguf_loader.h).
#include "lrc/io/gguf_loader.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <tuple>
#include <utility>

#include "lrc/core/error.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/rope_permute.h"
#include "lrc/model/layer_linears.h"

namespace lrc {

namespace {

constexpr uint64_t kMaxDimension = 1u << 24;  // any larger hyper-parameter is a corrupt file

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int hparam(const gguf::GgufFile& f, const char* key) {
  const uint64_t v = f.get_uint(key);
  if (v == 0 || v > kMaxDimension)
    fail(f.path(), std::string("metadata '") + key + "': value " + std::to_string(v) +
                       " out of range 1.." + std::to_string(kMaxDimension));
  return static_cast<int>(v);
}

}  // namespace

bool is_gguf_file(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, fp) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(fp);
  return ok;
}

std::string gguf_tensor_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string pre = "model.layers.";
  if (hf.rfind(pre, 0) != 0) return "";
  const size_t dot = hf.find('.', pre.size());
  if (dot == std::string::npos) return "";
  const std::string layer = hf.substr(pre.size(), dot - pre.size());
  const std::string rest = hf.substr(dot + 1);
  static const std::pair<const char*, const char*> kMap[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},  // qwen2
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},  // qwen3
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},  // mixtral's router
      {"self_attn.qkv_proj.weight", "attn_qkv.weight"},  // phi3: fused, q rows, k rows, v rows
      {"mlp.gate_up_proj.weight", "ffn_up.weight"},      // phi3: fused, gate rows first
  };
  for (const auto& [h, g] : kMap)
    if (rest == h) return "blk." + layer + "." + g;
  // mixtral's experts: llama.cpp stacks each kind over the experts, [n_expert, rows, cols]
  // (ffn_{gate,up,down}_exps); every expert's name maps to its stack (gguf_expert_of).
  const std::string ex = "block_sparse_moe.experts.";
  if (rest.rfind(ex, 0) == 0) {
    const size_t d = rest.find('.', ex.size());
    if (d == std::string::npos) return "";
    const std::string w = rest.substr(d + 1);
    if (w == "w1.weight") return "blk." + layer + ".ffn_gate_exps.weight";
    if (w == "w3.weight") return "blk." + layer + ".ffn_up_exps.weight";
    if (w == "w2.weight") return "blk." + layer + ".ffn_down_exps.weight";
  }
  return "";
}

int gguf_expert_of(const std::string& hf) {
  const std::string ex = ".block_sparse_moe.experts.";
  const size_t p = hf.find(ex);
  if (p == std::string::npos) return -1;
  const size_t b = p + ex.size(), d = hf.find('.', b);
  if (d == std::string::npos || d == b) return -1;
  int e = 0;
  for (size_t i = b; i < d; ++i) {
    if (hf[i] < '0' || hf[i] > '9' || e > (1 << 20)) return -1;
    e = e * 10 + (hf[i] - '0');
  }
  return e;
}

namespace {

// The tensor an HF name maps to, its shape checked against the config's. An expert's linear
// (mixtral) is its slice of the stacked tensor: expert e's rows are one contiguous run of whole
// rows (ggml blocks never cross a row), so the slice is the stack's info with e's offset.
gguf::TensorInfo checked_tensor(const gguf::GgufFile& f, const std::string& hf_name,
                                const std::vector<int64_t>& shape) {
  const std::string name = gguf_tensor_name(hf_name);
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (!t) fail(f.path(), "tensor '" + name + "': missing");
  const int e = gguf_expert_of(hf_name);
  if (e >= 0) {
    const int64_t n_expert = t->ne.size() == 3 ? t->ne[2] : 0;
    if (t->ne.size() != 3 || t->ne[0] != shape.at(1) || t->ne[1] != shape.at(0) || e >= n_expert)
      fail(f.path(), "tensor '" + name + "': shape " + shape_str(t->shape()) +
                         " contradicts the config (expected [n_expert > " + std::to_string(e) +
                         ", " + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + "])");
    gguf::TensorInfo s = *t;
    s.ne = {shape[1], shape[0]};
    s.n_elements = t->n_elements / n_expert;
    s.n_bytes = t->n_bytes / static_cast<uint64_t>(n_expert);
    s.offset = t->offset + static_cast<uint64_t>(e) * s.n_bytes;
    return s;
  }
  if (t->shape() != shape)
    fail(f.path(), "tensor '" + name + "': shape " + shape_str(t->shape()) +
                       " contradicts the config (expected " + shape_str(shape) + ")");
  return *t;
}

// *data = t dequantized to fp32; a linear gets its shape.
void read_slot(const gguf::GgufFile& f, const gguf::TensorInfo& t,
               const std::vector<int64_t>& shape, std::vector<float>* data, Linear* linear) {
  *data = f.tensor_f32(t);
  if (linear) {
    linear->d_out = static_cast<int>(shape[0]);
    linear->d_in = static_cast<int>(shape[1]);
  }
}

// Phi-3's LongRoPE as llama.cpp's converter stores it, read into what hf_loader makes of
// config.json's "longrope" (RopeScaling::LongRope): rope_factors_short.weight and
// rope_factors_long.weight [head_dim / 2] (F32) divide the frequencies, the short ones up to
// `original` positions (<arch>.rope.scaling.original_context_length; the context length where it
// is absent, as HF), and cos/sin are scaled by <arch>.rope.scaling.attn_factor (1 where absent,
// as llama.cpp reads it). Which set applies is HF's rule (the sequence reaches past `original`),
// where llama.cpp picks by its context size. Neither tensor: no scaling; one alone is refused.
void read_longrope(const gguf::GgufFile& f, const std::string& arch, LlamaConfig& c) {
  const std::string& where = f.path();
  const std::string attn_key = arch + ".rope.scaling.attn_factor";
  const float attn = f.has(attn_key) ? static_cast<float>(f.get_float(attn_key)) : 1.f;
  if (!(attn > 0.f) || !std::isfinite(attn))
    fail(where, "metadata '" + attn_key + "': " + std::to_string(attn) + " is not positive");
  const gguf::TensorInfo* lo = f.find_tensor("rope_factors_long.weight");
  const gguf::TensorInfo* sh = f.find_tensor("rope_factors_short.weight");
  if (!lo && !sh) {
    if (attn != 1.f)
      fail(where, "metadata '" + attn_key + "': " + std::to_string(attn) +
                      " without rope_factors_long/short.weight is not supported");
    return;
  }
  if (!lo || !sh)
    fail(where, std::string("tensor '") +
                    (lo ? "rope_factors_short.weight" : "rope_factors_long.weight") +
                    "': missing (LongRoPE needs both factor sets)");
  RopeScaling& s = c.rope_scaling;
  s.kind = RopeScaling::Kind::LongRope;
  const std::vector<int64_t> want = {c.head_dim() / 2};
  for (const auto& [t, name, out] : {std::tuple{sh, "rope_factors_short.weight", &s.short_factor},
                                     std::tuple{lo, "rope_factors_long.weight", &s.long_factor}}) {
    if (t->shape() != want)
      fail(where, std::string("tensor '") + name + "': shape " + shape_str(t->shape()) +
                      ", expected " + shape_str(want));
    *out = f.tensor_f32(*t);
    for (float x : *out)
      if (!(x > 0.f) || !std::isfinite(x))
        fail(where, std::string("tensor '") + name + "': factors must be positive");
  }
  const std::string orig_key = arch + ".rope.scaling.original_context_length";
  s.original = f.has(orig_key) ? hparam(f, orig_key.c_str()) : c.max_seq_len;
  s.attention_factor = attn;
}

// llama.cpp's converter permutes q and k rows for its interleaved RoPE; back to HF's order.
// (Only for llama: qwen2/qwen3 use NEOX RoPE, HF's half-split, and are stored as HF has them.)
void unpermute_qk(const LlamaConfig& c, LlamaLayer& L) {
  if (c.arch != "llama" && c.arch != "mixtral") return;  // mixtral is converted as llama
  L.wq.w = interleaved_to_halfsplit_rows(L.wq.w, c.n_heads, c.head_dim(), c.dim);
  L.wk.w = interleaved_to_halfsplit_rows(L.wk.w, c.n_kv_heads, c.head_dim(), c.dim);
}

// Layer i of a GGUF file on demand, from its map (LlamaModel::layer_source): dequantized
// like the eager loader's, then the file's pages are dropped so that one layer is resident.
class GgufLayerSource final : public LayerSource {
 public:
  GgufLayerSource(std::shared_ptr<const gguf::GgufFile> f, const LlamaConfig& cfg)
      : f_(std::move(f)), cfg_(cfg) {}

  void load(int i, LlamaLayer& L) override {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::vector<int64_t> norm = {cfg_.dim};
    for (const auto& [name, data] : {std::pair{p + "input_layernorm.weight", &L.attn_norm},
                                     std::pair{p + "post_attention_layernorm.weight", &L.ffn_norm}})
      read_slot(*f_, checked_tensor(*f_, name, norm), norm, data, nullptr);
    for (const LayerLinearInfo& t : layer_linears(cfg_)) {
      Linear& l = t.of(L);
      const std::vector<int64_t> shape = {linear_dim(cfg_, t.out), linear_dim(cfg_, t.in)};
      read_slot(*f_, checked_tensor(*f_, p + t.name + ".weight", shape), shape, &l.w, &l);
    }
    for (const LayerVector& v : layer_vectors(cfg_, L)) {
      const std::vector<int64_t> shape = v.dims();
      read_slot(*f_, checked_tensor(*f_, p + v.name, shape), shape, v.data, v.linear);
    }
    unpermute_qk(cfg_, L);
    validate_layer(cfg_, L, i, f_->path());
    f_->drop_pages();
  }

 private:
  std::shared_ptr<const gguf::GgufFile> f_;
  LlamaConfig cfg_;
};

// The model of f; with lazy_layers (file = f, kept alive by the layer source) only the
// embeddings, final norm and LM head are read now.
LlamaModel load_gguf(const gguf::GgufFile& f, std::shared_ptr<const gguf::GgufFile> file,
                     bool lazy_layers) {
  const std::string& where = f.path();
  // Families: llama (Mistral too, as llama.cpp converts it), qwen2 (q/k/v biases), qwen3
  // (q/k norms, key_length as head size), phi3 (fused attn_qkv and ffn_up, LongRoPE factor
  // tensors, a sliding window). Keys are "<arch>.…".
  const std::string& arch = f.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3" && arch != "phi3")
    fail(where, "metadata 'general.architecture': unknown architecture '" + arch +
                    "' (lrc loads 'llama', 'qwen2', 'qwen3', 'phi3')");
  const auto key = [&](const char* k) { return arch + "." + k; };

  LlamaModel m;
  LlamaConfig& c = m.cfg;
  c.arch = arch;
  c.qkv_bias = arch == "qwen2";
  c.qk_norm = arch == "qwen3";
  c.fused_proj = arch == "phi3";  // stored fused by llama.cpp too: kept so, as hf_loader does
  c.dim = hparam(f, key("embedding_length").c_str());
  c.hidden_dim = hparam(f, key("feed_forward_length").c_str());
  c.n_layers = hparam(f, key("block_count").c_str());
  c.n_heads = hparam(f, key("attention.head_count").c_str());
  c.n_kv_heads = f.has(key("attention.head_count_kv"))
                     ? hparam(f, key("attention.head_count_kv").c_str())
                     : c.n_heads;
  c.max_seq_len = hparam(f, key("context_length").c_str());
  c.norm_eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon")));
  c.rope_theta = f.has(key("rope.freq_base"))
                     ? static_cast<float>(f.get_float(key("rope.freq_base")))
                     : 10000.f;
  if (!(c.norm_eps > 0.f) || !(c.rope_theta > 0.f))
    fail(where, "metadata '" + key("attention.layer_norm_rms_epsilon") + "' / '" +
                    key("rope.freq_base") + "': must be positive");
  if (f.has(key("attention.key_length"))) {  // qwen3: heads need not be dim / n_heads wide
    const int hd = hparam(f, key("attention.key_length").c_str());
    if (hd % 2 != 0) fail(where, "metadata '" + key("attention.key_length") + "': odd");
    if (c.dim % c.n_heads != 0 || hd != c.dim / c.n_heads) c.head_dim_explicit = hd;
  }
  if (c.head_dim_explicit == 0 && c.dim % c.n_heads != 0)
    fail(where, "metadata '" + key("attention.head_count") + "': " + std::to_string(c.n_heads) +
                    " does not divide " + key("embedding_length") + " " + std::to_string(c.dim));
  if (c.n_heads % c.n_kv_heads != 0)
    fail(where, "metadata '" + key("attention.head_count_kv") + "': " + std::to_string(c.n_kv_heads) +
                    " does not divide the head count " + std::to_string(c.n_heads));
  // Each layer has 9 tensors (a fused phi3 layer 6): a block count the file cannot hold is
  // refused before anything is allocated for it.
  if (static_cast<uint64_t>(c.n_layers) * (c.fused_proj ? 6 : 9) > f.tensors().size())
    fail(where, "metadata '" + key("block_count") + "': " + std::to_string(c.n_layers) +
                    " layers, but the file holds only " + std::to_string(f.tensors().size()) +
                    " tensors");
  // What lrc's Llama does not implement is refused, not silently approximated.
  if (f.has(key("rope.dimension_count")) &&
      f.get_uint(key("rope.dimension_count")) != static_cast<uint64_t>(c.head_dim()))
    fail(where, "metadata '" + key("rope.dimension_count") + "': partial rotary (" +
                    std::to_string(f.get_uint(key("rope.dimension_count"))) + " of head dim " +
                    std::to_string(c.head_dim()) + ") is not supported");
  for (const std::string& k : {key("attention.key_length"), key("attention.value_length")})
    if (f.has(k) && f.get_uint(k) != static_cast<uint64_t>(c.head_dim()))
      fail(where, "metadata '" + k + "': differs from the head size " +
                      std::to_string(c.head_dim()));
  if (f.has(key("rope.scaling.type"))) {  // phi3's longrope is told by its factor tensors
    const std::string& t = f.get_string(key("rope.scaling.type"));
    if (t != "none" && !(arch == "phi3" && (t == "longrope" || t == "su")))
      fail(where, "metadata '" + key("rope.scaling.type") + "': RoPE scaling '" + t +
                      "' is not supported");
  }
  if (arch == "phi3" && f.has(key("attention.sliding_window"))) {
    // As HF's sliding_window: a query sees its last n keys; 0 = all (Phi-4). llama.cpp itself
    // runs Phi-3 without the window for now; lrc runs the model as HF defines it.
    const uint64_t w = f.get_uint(key("attention.sliding_window"));
    if (w > kMaxDimension)
      fail(where, "metadata '" + key("attention.sliding_window") + "': " + std::to_string(w) +
                      " out of range 0.." + std::to_string(kMaxDimension));
    c.sliding_window = static_cast<int>(w);
  }
  if (f.has(key("expert_count")) && f.get_uint(key("expert_count")) > 0) {
    // Mixtral as llama.cpp converts it: llama with experts (ffn_*_exps, router ffn_gate_inp).
    if (arch != "llama")
      fail(where, "metadata '" + key("expert_count") + "': experts of '" + arch +
                      "' are not supported (lrc reads llama's, i.e. Mixtral)");
    c.arch = "mixtral";
    c.n_experts = hparam(f, key("expert_count").c_str());
    c.n_experts_used = hparam(f, key("expert_used_count").c_str());
    if (c.n_experts_used > c.n_experts)
      fail(where, "metadata '" + key("expert_used_count") +
                      "': " + std::to_string(c.n_experts_used) + " exceeds " + key("expert_count") +
                      " " + std::to_string(c.n_experts));
  }
  if (arch == "phi3") {
    read_longrope(f, arch, c);
  } else {
    for (const char* t : {"rope_factors_long.weight", "rope_factors_short.weight"})
      if (f.find_tensor(t))
        fail(where, std::string("tensor '") + t + "': LongRoPE factors of '" + arch +
                        "' are not supported (lrc reads them for 'phi3')");
  }
  if (const gguf::TensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    if (c.rope_scaling.enabled())
      fail(where, "tensor 'rope_freqs.weight': beside LongRoPE factors is not supported");
    // Llama-3.1 as llama.cpp stores it: f_i divided by factor i (RopeScaling::FreqFactors).
    const std::vector<int64_t> want = {c.head_dim() / 2};
    if (rf->shape() != want)
      fail(where, "tensor 'rope_freqs.weight': shape " + shape_str(rf->shape()) + ", expected " +
                      shape_str(want));
    c.rope_scaling.kind = RopeScaling::Kind::FreqFactors;
    c.rope_scaling.short_factor = f.tensor_f32(*rf);
    for (float x : c.rope_scaling.short_factor)
      if (!(x > 0.f)) fail(where, "tensor 'rope_freqs.weight': factors must be positive");
  }

  // The vocabulary size is the embedding's row count; the metadata must agree.
  const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
  if (!emb) fail(where, "tensor 'token_embd.weight': missing");
  if (emb->ne.size() != 2 || emb->ne[0] != c.dim)
    fail(where, "tensor 'token_embd.weight': shape " + shape_str(emb->shape()) +
                    " is not [vocab, " + std::to_string(c.dim) + "]");
  if (emb->ne[1] <= 0 || static_cast<uint64_t>(emb->ne[1]) > kMaxDimension)
    fail(where, "tensor 'token_embd.weight': vocabulary of " + std::to_string(emb->ne[1]) +
                    " rows is out of range");
  c.vocab_size = static_cast<int>(emb->ne[1]);
  if (f.has(key("vocab_size")) &&
      f.get_uint(key("vocab_size")) != static_cast<uint64_t>(c.vocab_size))
    fail(where, "metadata '" + key("vocab_size") + "': " + std::to_string(f.get_uint(key("vocab_size"))) +
                    " contradicts token_embd.weight with " + std::to_string(c.vocab_size) +
                    " rows");
  if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens")) {
    const auto* arr = std::get_if<gguf::Value::Array>(&toks->data);
    if (arr && arr->size() != static_cast<size_t>(c.vocab_size))
      fail(where, "metadata 'tokenizer.ggml.tokens': vocabulary of " + std::to_string(arr->size()) +
                      " tokens contradicts token_embd.weight with " + std::to_string(c.vocab_size) +
                      " rows");
  }
  if (f.has("tokenizer.ggml.bos_token_id"))
    c.bos_id = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id"));
  if (f.has("tokenizer.ggml.eos_token_id"))
    c.eos_id = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id"));

  // Tensors, in HF order; a lazy model reads only what lies outside the layers now.
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.rope = RopeStyle::HalfSplit;  // after the q/k un-permutation (unpermute_qk)
  const std::string layer_prefix = "model.layers.";
  for (HfTensorSlot& s : hf_tensor_slots(m)) {
    const gguf::TensorInfo t = checked_tensor(f, s.name, s.shape);
    if (!lazy_layers || s.name.rfind(layer_prefix, 0) != 0) read_slot(f, t, s.shape, s.data, s.linear);
    m.source_dtypes[s.name] = gguf::ggml_type_name(t.type);
  }
  if (c.tied_embeddings) {
    m.lm_head.d_out = c.vocab_size;
    m.lm_head.d_in = c.dim;
    m.lm_head.w = m.tok_embeddings;
  }
  if (lazy_layers) {
    f.drop_pages();
    m.layer_source = std::make_shared<GgufLayerSource>(file, c);
  } else {
    for (LlamaLayer& L : m.layers) unpermute_qk(c, L);
  }
  validate_model(m, where);
  return m;
}

}  // namespace

LlamaModel load_gguf_model(const std::string& file, bool lazy_layers) {
  if (!lazy_layers) return load_gguf_model(gguf::GgufFile(file));
  auto f = std::make_shared<const gguf::GgufFile>(file);
  return load_gguf(*f, f, true);
}

LlamaModel load_gguf_model(const gguf::GgufFile& f) { return load_gguf(f, nullptr, false); }

BpeVocab load_gguf_bpe_vocab(const gguf::GgufFile& f) {
  const std::string& where = f.path();
  if (!f.has("tokenizer.ggml.tokens"))
    fail(where,
         "metadata 'tokenizer.ggml.tokens': missing (the file has no vocabulary; pass "
         "--tokenizer PATH)");
  const std::string& model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    fail(where, "metadata 'tokenizer.ggml.model': '" + model +
                    "' vocabularies are not supported (lrc reads 'gpt2' byte-level BPE and 'llama' "
                    "SentencePiece)");
  BpeVocab v;
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const int64_t n = static_cast<int64_t>(v.tokens.size());
  if (f.has("tokenizer.ggml.token_type")) {
    const auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (static_cast<int64_t>(types.size()) != n)
      fail(where, "metadata 'tokenizer.ggml.token_type': " + std::to_string(types.size()) +
                      " entries for " + std::to_string(n) + " tokens");
    v.token_types.assign(types.begin(), types.end());
  }
  if (f.has("tokenizer.ggml.merges")) {
    const auto merges = f.get_string_array("tokenizer.ggml.merges");
    v.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const std::string& s = merges[i];
      const size_t sp = s.find(' ', 1);  // as llama.cpp: a token may itself start with ' '
      if (sp == std::string::npos)
        fail(where, "metadata 'tokenizer.ggml.merges'[" + std::to_string(i) + "]: '" + s +
                        "' is not two tokens separated by a space");
      v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
  }
  v.pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "gpt2";
  v.pre_steps = pre_tokenizer_steps(v.pre, where + ": metadata 'tokenizer.ggml.pre'");
  auto id = [&](const char* key) -> int {
    if (!f.has(key)) return -1;
    const int64_t x = f.get_int(key);
    if (x < 0 || x >= n)
      fail(where, std::string("metadata '") + key + "': id " + std::to_string(x) +
                      " is outside the vocabulary of " + std::to_string(n));
    return static_cast<int>(x);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.add_bos = f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
  return v;
}

std::unique_ptr<BpeTokenizer> load_gguf_tokenizer(const std::string& file) {
  const gguf::GgufFile f(file);
  return std::make_unique<BpeTokenizer>(load_gguf_bpe_vocab(f), file);
}

}  // namespace lrc
