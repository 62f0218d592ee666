// The seven linears of a Llama layer, in HF order: the one table every loop over them reads
// (shapes, names, quantization groups), so a layer's linears are listed once.
//
//   name (HF, within a layer)  member     [d_out x d_in]             group
//   self_attn.q_proj           wq         [n_heads*hd  x dim]        0  q/k/v share their input
//   self_attn.k_proj           wk         [n_kv*hd     x dim]        0
//   self_attn.v_proj           wv         [n_kv*hd     x dim]        0
//   self_attn.o_proj           wo         [dim         x n_heads*hd] 1
//   mlp.gate_proj              w_gate     [hidden      x dim]        2  gate/up share theirs
//   mlp.up_proj                w_up       [hidden      x dim]        2
//   mlp.down_proj              w_down     [dim         x hidden]     3
//
// A fused-projection family (phi3, LlamaConfig::fused_proj) has four, quantized as stored:
//   self_attn.qkv_proj         wqkv       [(n_heads+2 n_kv)*hd x dim] 0
//   self_attn.o_proj           wo         [dim         x n_heads*hd] 1
//   mlp.gate_up_proj           w_gate_up  [2 hidden    x dim]        2
//   mlp.down_proj              w_down     [dim         x hidden]     3
// A MoE family (mixtral, LlamaConfig::moe()) has q/k/v/o, then for each expert e of n:
//   block_sparse_moe.experts.<e>.w1  experts[e].w_gate  [hidden x dim]  2  (e's routed tokens)
//   block_sparse_moe.experts.<e>.w3  experts[e].w_up    [hidden x dim]  2
//   block_sparse_moe.experts.<e>.w2  experts[e].w_down  [dim x hidden]  3
// (its router, block_sparse_moe.gate [n x dim], is not quantized: a LayerVector below).
// layer_linears(cfg) gives the table of a config; every loop over a layer's linears uses it,
// and reaches the linear through t.of(L).
//
// The group numbers are those of LinearGroup (lrc/model/forward.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lrc/model/llama.h"

namespace lrc {

enum class LinearDim { Dim, Hidden, QHeads, KvHeads, Qkv, Hidden2 };

struct LayerLinearInfo {
  const char* name;  // HF name within the layer
  Linear LlamaLayer::*member;  // null for an expert's linear
  LinearDim out, in;
  int group;  // static_cast<int>(LinearGroup)
  // An expert's linear (MoE): L.experts[expert].*expert_member, of n_experts experts.
  int expert = -1;
  Linear MoeExpert::*expert_member = nullptr;
  int n_experts = 0;

  // The linear this entry names in layer L. A MoE layer's experts are sized (n_experts) on the
  // first access, before any pointer into them is taken, so pointers stay valid.
  Linear& of(LlamaLayer& L) const {
    if (expert < 0) return L.*member;
    if (L.experts.size() < static_cast<size_t>(n_experts))
      L.experts.resize(static_cast<size_t>(n_experts));
    return L.experts[static_cast<size_t>(expert)].*expert_member;
  }
  const Linear& of(const LlamaLayer& L) const {
    return expert < 0 ? L.*member : L.experts.at(static_cast<size_t>(expert)).*expert_member;
  }
};

inline constexpr std::array<LayerLinearInfo, 7> kLayerLinears = {{
    {"self_attn.q_proj", &LlamaLayer::wq, LinearDim::QHeads, LinearDim::Dim, 0, -1, nullptr, 0},
    {"self_attn.k_proj", &LlamaLayer::wk, LinearDim::KvHeads, LinearDim::Dim, 0, -1, nullptr, 0},
    {"self_attn.v_proj", &LlamaLayer::wv, LinearDim::KvHeads, LinearDim::Dim, 0, -1, nullptr, 0},
    {"self_attn.o_proj", &LlamaLayer::wo, LinearDim::Dim, LinearDim::QHeads, 1, -1, nullptr, 0},
    {"mlp.gate_proj", &LlamaLayer::w_gate, LinearDim::Hidden, LinearDim::Dim, 2, -1, nullptr, 0},
    {"mlp.up_proj", &LlamaLayer::w_up, LinearDim::Hidden, LinearDim::Dim, 2, -1, nullptr, 0},
    {"mlp.down_proj", &LlamaLayer::w_down, LinearDim::Dim, LinearDim::Hidden, 3, -1, nullptr, 0},
}};

inline constexpr std::array<LayerLinearInfo, 4> kFusedLayerLinears = {{
    {"self_attn.qkv_proj", &LlamaLayer::wqkv, LinearDim::Qkv, LinearDim::Dim, 0, -1, nullptr, 0},
    {"self_attn.o_proj", &LlamaLayer::wo, LinearDim::Dim, LinearDim::QHeads, 1, -1, nullptr, 0},
    {"mlp.gate_up_proj", &LlamaLayer::w_gate_up, LinearDim::Hidden2, LinearDim::Dim, 2, -1, nullptr,
     0},
    {"mlp.down_proj", &LlamaLayer::w_down, LinearDim::Dim, LinearDim::Hidden, 3, -1, nullptr, 0},
}};

// The table of a MoE layer with n experts (q/k/v/o, then w1, w3, w2 of each expert), made once
// per n and kept for the process (src/model/layer_linears.cpp).
std::span<const LayerLinearInfo> moe_layer_linears(int n_experts);

// The linears a layer of config c has.
inline std::span<const LayerLinearInfo> layer_linears(const LlamaConfig& c) {
  if (c.moe()) return moe_layer_linears(c.n_experts);
  if (c.fused_proj) return kFusedLayerLinears;
  return kLayerLinears;
}

// Every kind of layer linear of any family, each name once (Llama's order, then phi3's fused
// ones): for listings by name (reports) that see several models.
inline std::vector<LayerLinearInfo> every_layer_linear() {
  std::vector<LayerLinearInfo> v(kLayerLinears.begin(), kLayerLinears.end());
  for (const auto& t : kFusedLayerLinears) {
    bool seen = false;
    for (const auto& u : v) seen = seen || std::string(u.name) == t.name;
    if (!seen) v.push_back(t);
  }
  return v;
}

// The size a LinearDim stands for in config c.
inline int64_t linear_dim(const LlamaConfig& c, LinearDim d) {
  switch (d) {
    case LinearDim::Dim:
      return c.dim;
    case LinearDim::Hidden:
      return c.hidden_dim;
    case LinearDim::QHeads:
      return static_cast<int64_t>(c.n_heads) * c.head_dim();
    case LinearDim::KvHeads:
      return static_cast<int64_t>(c.n_kv_heads) * c.head_dim();
    case LinearDim::Qkv:
      return static_cast<int64_t>(c.n_heads + 2 * c.n_kv_heads) * c.head_dim();
    case LinearDim::Hidden2:
      return 2 * static_cast<int64_t>(c.hidden_dim);
  }
  return 0;
}

// The fp32 vectors of a layer besides its two norms and the linears' weights, where the family
// has them: q/k/v biases (qkv_bias) and the per-head q/k norms (qk_norm). Names are HF's
// within the layer ("model.layers.<i>." + name in HF files and lrc checkpoints alike); they are
// never quantized. The pointers are into L (const callers only read through them).
//
// MoE (mixtral): the router block_sparse_moe.gate.weight [n_experts x dim] is listed here too
// (2-D: `shape`, and `linear` is the Linear whose w it is, whose d_out/d_in the reader sets
// with set_layer_vector), since it is stored 16-bit and never quantized.
struct LayerVector {
  std::string name;
  std::vector<float>* data;
  int64_t size;
  std::vector<int64_t> shape = {};  // {size} when empty
  Linear* linear = nullptr;
  std::vector<int64_t> dims() const { return shape.empty() ? std::vector<int64_t>{size} : shape; }
};
// *v.data = values (and the router's d_out/d_in).
inline void set_layer_vector(const LayerVector& v, std::vector<float> values) {
  *v.data = std::move(values);
  if (v.linear) {
    v.linear->d_out = static_cast<int>(v.shape.at(0));
    v.linear->d_in = static_cast<int>(v.shape.at(1));
  }
}
inline std::vector<LayerVector> layer_vectors(const LlamaConfig& c, const LlamaLayer& L) {
  auto& M = const_cast<LlamaLayer&>(L);
  std::vector<LayerVector> v;
  if (c.qkv_bias) {
    v.push_back({"self_attn.q_proj.bias", &M.wq.bias, linear_dim(c, LinearDim::QHeads)});
    v.push_back({"self_attn.k_proj.bias", &M.wk.bias, linear_dim(c, LinearDim::KvHeads)});
    v.push_back({"self_attn.v_proj.bias", &M.wv.bias, linear_dim(c, LinearDim::KvHeads)});
  }
  if (c.qk_norm) {
    v.push_back({"self_attn.q_norm.weight", &M.q_norm, c.head_dim()});
    v.push_back({"self_attn.k_norm.weight", &M.k_norm, c.head_dim()});
  }
  if (c.moe())
    v.push_back({"block_sparse_moe.gate.weight",
                 &M.router.w,
                 static_cast<int64_t>(c.n_experts) * c.dim,
                 {c.n_experts, c.dim},
                 &M.router});
  return v;
}

// "layers.<i>.<name>": the name lrc gives linear t of layer i (checkpoints, reports, --ranks).
inline std::string layer_linear_name(int i, const LayerLinearInfo& t) {
  return "layers." + std::to_string(i) + "." + t.name;
}

}  // namespace lrc
