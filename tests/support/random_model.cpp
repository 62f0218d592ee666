#include "support/random_model.h"

#include <cmath>
#include <random>

namespace lrc::test {

LlamaConfig tiny_config(int dim, int hidden, int n_layers, int n_heads, int n_kv_heads, int vocab,
                        int max_seq) {
  LlamaConfig c;
  c.dim = dim;
  c.hidden_dim = hidden;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.vocab_size = vocab;
  c.max_seq_len = max_seq;
  return c;
}

LlamaModel random_model(const LlamaConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto fill = [&](std::vector<float>& v, size_t n, float sd, float mean = 0.f) {
    v.resize(n);
    for (auto& x : v) x = mean + sd * nd(rng);
  };
  auto lin = [&](Linear& l, int d_out, int d_in) {
    l.d_out = d_out;
    l.d_in = d_in;
    fill(l.w, static_cast<size_t>(d_out) * d_in, 1.f / std::sqrt(static_cast<float>(d_in)));
  };
  LlamaModel m;
  m.cfg = cfg;
  const int hd = cfg.head_dim();
  fill(m.tok_embeddings, static_cast<size_t>(cfg.vocab_size) * cfg.dim, 1.f);
  m.layers.resize(cfg.n_layers);
  for (auto& L : m.layers) {
    fill(L.attn_norm, cfg.dim, 0.1f, 1.f);
    fill(L.ffn_norm, cfg.dim, 0.1f, 1.f);
    lin(L.wq, cfg.n_heads * hd, cfg.dim);
    lin(L.wk, cfg.n_kv_heads * hd, cfg.dim);
    lin(L.wv, cfg.n_kv_heads * hd, cfg.dim);
    lin(L.wo, cfg.dim, cfg.n_heads * hd);
    lin(L.w_gate, cfg.hidden_dim, cfg.dim);
    lin(L.w_up, cfg.hidden_dim, cfg.dim);
    lin(L.w_down, cfg.dim, cfg.hidden_dim);
  }
  fill(m.final_norm, cfg.dim, 0.1f, 1.f);
  if (cfg.tied_embeddings) {
    m.lm_head.d_out = cfg.vocab_size;
    m.lm_head.d_in = cfg.dim;
    m.lm_head.w = m.tok_embeddings;
  } else {
    lin(m.lm_head, cfg.vocab_size, cfg.dim);
  }
  return m;
}

std::vector<int32_t> spread_tokens(const LlamaModel& m, int n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = static_cast<int32_t>((i * 37 + 5) % static_cast<size_t>(m.cfg.vocab_size));
  return t;
}

}  // namespace lrc::test
