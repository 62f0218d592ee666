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
// The group numbers are those of LinearGroup (lrc/model/forward.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "lrc/model/llama.h"

namespace lrc {

enum class LinearDim { Dim, Hidden, QHeads, KvHeads };

struct LayerLinearInfo {
  const char* name;  // HF name within the layer
  Linear LlamaLayer::*member;
  LinearDim out, in;
  int group;  // static_cast<int>(LinearGroup)
};

inline constexpr std::array<LayerLinearInfo, 7> kLayerLinears = {{
    {"self_attn.q_proj", &LlamaLayer::wq, LinearDim::QHeads, LinearDim::Dim, 0},
    {"self_attn.k_proj", &LlamaLayer::wk, LinearDim::KvHeads, LinearDim::Dim, 0},
    {"self_attn.v_proj", &LlamaLayer::wv, LinearDim::KvHeads, LinearDim::Dim, 0},
    {"self_attn.o_proj", &LlamaLayer::wo, LinearDim::Dim, LinearDim::QHeads, 1},
    {"mlp.gate_proj", &LlamaLayer::w_gate, LinearDim::Hidden, LinearDim::Dim, 2},
    {"mlp.up_proj", &LlamaLayer::w_up, LinearDim::Hidden, LinearDim::Dim, 2},
    {"mlp.down_proj", &LlamaLayer::w_down, LinearDim::Dim, LinearDim::Hidden, 3},
}};

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
  }
  return 0;
}

// "layers.<i>.<name>": the name lrc gives linear t of layer i (checkpoints, reports, --ranks).
inline std::string layer_linear_name(int i, const LayerLinearInfo& t) {
  return "layers." + std::to_string(i) + "." + t.name;
}

}  // namespace lrc
