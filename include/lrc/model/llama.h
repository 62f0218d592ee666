// The Llama model as lrc holds it in memory: float32 weights, one struct per layer.
// Every loader (HF safetensors, llama2.c, GGUF, lrc checkpoints) produces a LlamaModel;
// every consumer (forward, rotation, quantization pipeline, writer) takes one.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lrc/format/linear.h"
#include "lrc/format/online_transform.h"
#include "lrc/kernels/backend.h"
#include "lrc/kernels/rope.h"

namespace lrc {

// One config for every supported family: LlamaModel is the one model type, and a family is the
// Llama layer with some of the optional features below switched on (all off = Llama, whose
// forward is unchanged by them). The loaders set them from config.json `model_type` / GGUF
// `general.architecture` (lrc/model/family.h lists which family sets which).
struct LlamaConfig {
  std::string arch = "llama";  // the family: llama | mistral | qwen2 | qwen3 | phi3 | mixtral
  int dim = 0;         // hidden size
  int hidden_dim = 0;  // SwiGLU intermediate size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int max_seq_len = 0;  // context length
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  RopeStyle rope = RopeStyle::HalfSplit;
  bool tied_embeddings = false;
  int bos_id = 1;
  int eos_id = 2;
  // ---- family features
  int head_dim_explicit = 0;    // head size when it is not dim / n_heads (qwen3); 0 = derived
  RopeScaling rope_scaling;     // llama3 / longrope frequencies (kernels/rope.h); none by default
  bool qkv_bias = false;        // qwen2: q/k/v projections add a bias [d_out]
  bool qk_norm = false;         // qwen3: RMSNorm over each q and k head (weights [head_dim])
  int sliding_window = 0;       // mistral: a query sees its last `sliding_window` keys; 0 = all
  bool fused_proj = false;      // phi3: one qkv_proj and one gate_up_proj (gate rows first)
  // mixtral (sparse MoE feed-forward): n_experts SwiGLU experts and a router choosing
  // n_experts_used of them per token (HF MixtralSparseMoeBlock); 0 = the dense feed-forward.
  int n_experts = 0;
  int n_experts_used = 0;
  bool moe() const { return n_experts > 0; }
  int head_dim() const { return head_dim_explicit > 0 ? head_dim_explicit : dim / n_heads; }
  int q_dim() const { return n_heads * head_dim(); }
  int kv_dim() const { return n_kv_heads * head_dim(); }
};

// One expert of a MoE feed-forward (mixtral): HF's w1 (gate), w3 (up), w2 (down).
struct MoeExpert {
  Linear w_gate, w_up, w_down;  // [hidden x dim] x2, [dim x hidden]
};

struct LlamaLayer {
  std::vector<float> attn_norm;  // [dim]
  std::vector<float> ffn_norm;   // [dim]
  Linear wq, wk, wv, wo;         // [n_heads*hd x dim], [n_kv*hd x dim] x2, [dim x n_heads*hd]
  Linear w_gate, w_up, w_down;   // [hidden x dim] x2, [dim x hidden]
  // fused_proj (phi3) instead of wq/wk/wv and w_gate/w_up, quantized as stored:
  Linear wqkv;                       // [(n_heads + 2 n_kv)*hd x dim]: q rows, k rows, v rows
  Linear w_gate_up;                  // [2 hidden x dim]: gate rows, then up rows
  std::vector<float> q_norm, k_norm;  // qk_norm (qwen3): [head_dim] each
  // moe (mixtral) instead of w_gate/w_up/w_down: the router block_sparse_moe.gate
  // [n_experts x dim] (an FP linear: it stays 16-bit, never quantized) and the experts
  // (sized by the first access through layer_linears, see LayerLinearInfo::of).
  Linear router;
  std::vector<MoeExpert> experts;
};

// Where a lazily loaded model's layers come from (io: the mapped safetensors files of an HF
// directory). A streaming pipeline loads layer i, works on it and releases it, so a model
// never needs to fit in memory as a whole.
class LayerSource {
 public:
  virtual ~LayerSource() = default;
  // Fills L (norms and FP linears, fp32, as the eager loader would) with layer i's weights.
  virtual void load(int i, LlamaLayer& L) = 0;
};

struct LlamaModel {
  LlamaConfig cfg;
  std::vector<float> tok_embeddings;  // [vocab x dim]
  std::vector<LlamaLayer> layers;
  std::vector<float> final_norm;  // [dim]
  Linear lm_head;                 // [vocab x dim]; a copy of the embedding when tied

  // QuaRot online rotations (null = none): before o_proj (size dim), before down_proj
  // (size hidden_dim), and on each query/key head after RoPE (size head_dim).
  OnlineTransformPtr online_o, online_down, online_qk;
  KvQuantSpec kv;

  // Set when the layers are read on demand: a layer is resident between load_layer(i) and
  // release_layer(i) (or always, without a source).
  std::shared_ptr<LayerSource> layer_source;
  bool layer_resident(int i) const { return !layers[static_cast<size_t>(i)].attn_norm.empty(); }
  void load_layer(int i);     // reads layer i from layer_source unless it is resident
  void release_layer(int i);  // frees layer i's weights (needs a layer_source to get them back)

  // Who runs the forward's tensor work (kernels/backend.h); null = the CPU reference.
  BackendPtr backend;
  const Backend& run_backend() const { return backend ? *backend : cpu_reference_backend(); }

  // name -> dtype as stored in the source file (for `lrc inspect`).
  std::map<std::string, std::string> source_dtypes;

  int64_t n_params() const;
};

// Checks every shape against cfg (of the resident layers, with a layer_source); throws
// lrc::Error naming `where` and the tensor.
void validate_model(const LlamaModel& m, const std::string& where);

// Backend::take_over for every linear of every layer (a loaded model that will only run on
// its backend: lrc eval / generate with --kernels real). Returns the bytes the backend holds.
int64_t hand_over_linears(LlamaModel& m);
void validate_layer(const LlamaConfig& c, const LlamaLayer& L, int i, const std::string& where);

}  // namespace lrc
