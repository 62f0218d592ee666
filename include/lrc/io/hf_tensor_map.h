// The Hugging Face tensor names of a Llama model and where each lives in a LlamaModel:
//
//   model.embed_tokens.weight                          [vocab, dim]
//   model.layers.N.input_layernorm.weight              [dim]
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight     [heads*hd | kv*hd, dim], o: [dim, heads*hd]
//   model.layers.N.post_attention_layernorm.weight     [dim]
//   model.layers.N.mlp.{gate,up}_proj.weight           [hidden, dim]
//   model.layers.N.mlp.down_proj.weight                [dim, hidden]
//   (mixtral instead of mlp.*: block_sparse_moe.experts.E.w{1,3,2}.weight per expert E, and the
//    router block_sparse_moe.gate.weight [n_experts, dim])
//   model.norm.weight                                  [dim]
//   lm_head.weight                                     [vocab, dim]   (absent when tied)
//
// Used by the HF loader and writer, `lrc inspect`, and anything that lists a model's tensors.
// lrc uses these names as the canonical tensor names for every format (LlamaModel::source_dtypes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lrc/model/llama.h"

namespace lrc {

struct HfTensorSlot {
  std::string name;            // HF name
  std::vector<int64_t> shape;  // as the config implies it
  std::vector<float>* data;    // where the weights go
  Linear* linear;              // the projection (its d_out/d_in to set), null for a vector
};

// All tensors of m in HF order, shapes from m.cfg. Resizes m.layers to cfg.n_layers.
// lm_head is listed only when cfg.tied_embeddings is false.
std::vector<HfTensorSlot> hf_tensor_slots(LlamaModel& m);

struct HfTensorView {
  std::string name;
  std::vector<int64_t> shape;
  const std::vector<float>* data;
};
// The same list for reading (m.layers must already hold cfg.n_layers layers).
std::vector<HfTensorView> hf_tensor_views(const LlamaModel& m);

}  // namespace lrc
