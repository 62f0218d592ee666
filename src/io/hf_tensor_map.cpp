#include "lrc/io/hf_tensor_map.h"

#include "lrc/core/error.h"

namespace lrc {

std::vector<HfTensorSlot> hf_tensor_slots(LlamaModel& m) {
  const LlamaConfig& c = m.cfg;
  const int64_t dim = c.dim, hidden = c.hidden_dim, vocab = c.vocab_size;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * c.head_dim();
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * c.head_dim();
  m.layers.resize(static_cast<size_t>(c.n_layers));
  std::vector<HfTensorSlot> s;
  s.push_back({"model.embed_tokens.weight", {vocab, dim}, &m.tok_embeddings, nullptr});
  for (int i = 0; i < c.n_layers; ++i) {
    LlamaLayer& L = m.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    auto lin = [&](const std::string& n, Linear& l, int64_t d_out, int64_t d_in) {
      s.push_back({p + n + ".weight", {d_out, d_in}, &l.w, &l});
    };
    s.push_back({p + "input_layernorm.weight", {dim}, &L.attn_norm, nullptr});
    lin("self_attn.q_proj", L.wq, q_dim, dim);
    lin("self_attn.k_proj", L.wk, kv_dim, dim);
    lin("self_attn.v_proj", L.wv, kv_dim, dim);
    lin("self_attn.o_proj", L.wo, dim, q_dim);
    s.push_back({p + "post_attention_layernorm.weight", {dim}, &L.ffn_norm, nullptr});
    lin("mlp.gate_proj", L.w_gate, hidden, dim);
    lin("mlp.up_proj", L.w_up, hidden, dim);
    lin("mlp.down_proj", L.w_down, dim, hidden);
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
