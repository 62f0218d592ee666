#include "lrc/io/hf_tensor_map.h"

#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"

namespace lrc {

std::vector<HfTensorSlot> hf_tensor_slots(LlamaModel& m) {
  const LlamaConfig& c = m.cfg;
  const int64_t dim = c.dim, vocab = c.vocab_size;
  m.layers.resize(static_cast<size_t>(c.n_layers));
  std::vector<HfTensorSlot> s;
  s.push_back({"model.embed_tokens.weight", {vocab, dim}, &m.tok_embeddings, nullptr});
  for (int i = 0; i < c.n_layers; ++i) {
    LlamaLayer& L = m.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    bool attn_norm = false, ffn_norm = false;
    for (const auto& t : layer_linears(c)) {
      // The norm feeding each half of the layer comes before its first linear (HF order).
      if (t.group == 0 && !attn_norm)
        s.push_back({p + "input_layernorm.weight", {dim}, &L.attn_norm, nullptr});
      if (t.group >= 2 && !ffn_norm)
        s.push_back({p + "post_attention_layernorm.weight", {dim}, &L.ffn_norm, nullptr});
      attn_norm = attn_norm || t.group == 0;
      ffn_norm = ffn_norm || t.group >= 2;
      Linear& l = t.of(L);
      s.push_back(
          {p + t.name + ".weight", {linear_dim(c, t.out), linear_dim(c, t.in)}, &l.w, &l});
    }
    for (const LayerVector& v : layer_vectors(c, L))
      s.push_back({p + v.name, v.dims(), v.data, v.linear});
  }
  s.push_back({"model.norm.weight", {dim}, &m.final_norm, nullptr});
  if (!c.tied_embeddings) s.push_back({"lm_head.weight", {vocab, dim}, &m.lm_head.w, &m.lm_head});
  return s;
}

std::vector<HfTensorView> hf_tensor_views(const LlamaModel& m) {
  if (static_cast<int>(m.layers.size()) != m.cfg.n_layers)
    fail("hf_tensor_views", "model has " + std::to_string(m.layers.size()) +
                                " layers, config says " + std::to_string(m.cfg.n_layers));
  // hf_tensor_slots only resizes layers (a no-op here) and takes addresses: nothing is written.
  std::vector<HfTensorView> out;
  for (auto& s : hf_tensor_slots(const_cast<LlamaModel&>(m)))
    out.push_back({std::move(s.name), std::move(s.shape), s.data});
  return out;
}

}  // namespace lrc
