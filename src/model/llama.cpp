#include "lrc/model/llama.h"

#include <cmath>
#include <limits>
#include <string>

#include "lrc/core/error.h"
#include "lrc/model/layer_linears.h"

namespace lrc {

int64_t LlamaModel::n_params() const {
  int64_t n = static_cast<int64_t>(tok_embeddings.size()) + final_norm.size();
  auto lin = [](const Linear& l) { return static_cast<int64_t>(l.d_out) * l.d_in; };
  for (const auto& L : layers) {
    n += L.attn_norm.size() + L.ffn_norm.size() + L.q_norm.size() + L.k_norm.size() +
         L.router.w.size();
    for (const auto& t : layer_linears(cfg)) n += lin(t.of(L)) + t.of(L).bias.size();
  }
  if (!cfg.tied_embeddings) n += lin(lm_head);
  return n;
}

void LlamaModel::load_layer(int i) {
  if (i < 0 || i >= static_cast<int>(layers.size()))
    fail("load_layer", "layer " + std::to_string(i) + " out of range");
  if (layer_resident(i)) return;
  if (!layer_source) fail("load_layer", "layer " + std::to_string(i) + " is not in memory");
  layer_source->load(i, layers[static_cast<size_t>(i)]);
}

void LlamaModel::release_layer(int i) {
  if (!layer_source) fail("release_layer", "the model has no layer source to reload from");
  layers.at(static_cast<size_t>(i)) = LlamaLayer{};
}

namespace {
// A NaN or Inf weight turns every activation after it into NaN, and the perplexity with it;
// refused at load, naming the tensor. One vectorizable pass (|x| <= FLT_MAX is false for NaN
// and Inf); the search for the first bad element runs only when there is one.
void check_finite(const std::vector<float>& v, const std::string& where, const std::string& name) {
  bool ok = true;
  for (const float x : v) ok &= std::fabs(x) <= std::numeric_limits<float>::max();
  if (ok) return;
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      fail(where, "tensor '" + name + "': " + (std::isnan(v[i]) ? "NaN" : "infinite") +
                      " value at element " + std::to_string(i));
}

void check_linear(const Linear& l, int d_out, int d_in, const std::string& where,
                  const std::string& name) {
  const bool fp_ok = !l.packed && l.w.size() == static_cast<size_t>(d_out) * d_in;
  const bool q_ok = l.packed && l.w.empty() && l.packed->d_out == d_out && l.packed->d_in == d_in;
  if (l.d_out != d_out || l.d_in != d_in || !(fp_ok || q_ok))
    fail(where, "tensor '" + name + "': shape [" + std::to_string(l.d_out) + ", " +
                    std::to_string(l.d_in) + "] contradicts the config (expected [" +
                    std::to_string(d_out) + ", " + std::to_string(d_in) + "])");
  if (l.packed) l.packed->validate((where + ": tensor '" + name + "'").c_str());
  const LowRankPair& lr = l.lr;
  if (lr.rank > 0 && (lr.u.size() != static_cast<size_t>(d_out) * lr.rank ||
                      lr.v.size() != static_cast<size_t>(d_in) * lr.rank))
    fail(where,
         "tensor '" + name + "': low-rank factors do not match rank " + std::to_string(lr.rank));
  check_finite(l.w, where, name);
  check_finite(lr.u, where, name + " (low-rank U)");
  check_finite(lr.v, where, name + " (low-rank V)");
}
void check_vec(const std::vector<float>& v, size_t n, const std::string& where,
               const std::string& name) {
  if (v.size() != n)
    fail(where, "tensor '" + name + "': has " + std::to_string(v.size()) +
                    " elements, the config implies " + std::to_string(n));
  check_finite(v, where, name);
}
}  // namespace

int64_t hand_over_linears(LlamaModel& m) {
  int64_t bytes = 0;
  const Backend& be = m.run_backend();
  for (LlamaLayer& L : m.layers)
    for (const auto& t : layer_linears(m.cfg)) bytes += be.take_over(t.of(L));
  return bytes;
}

void validate_model(const LlamaModel& m, const std::string& where) {
  const auto& c = m.cfg;
  if (c.dim <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.n_layers <= 0 || c.vocab_size <= 0 ||
      c.hidden_dim <= 0)
    fail(where, "config: dimensions must be positive");
  if (c.head_dim_explicit <= 0 && c.dim % c.n_heads != 0)
    fail(where, "config: hidden size not divisible by the head count");
  if (c.fused_proj && c.qkv_bias) fail(where, "config: fused projections with biases");
  if (c.sliding_window < 0) fail(where, "config: sliding window must be >= 0");
  if (c.n_experts < 0 || (c.moe() && (c.n_experts_used < 1 || c.n_experts_used > c.n_experts)))
    fail(where, "config: " + std::to_string(c.n_experts_used) + " experts per token of " +
                    std::to_string(c.n_experts) + " (need 1 <= experts per token <= experts)");
  if (c.moe() && c.fused_proj) fail(where, "config: MoE with fused projections");
  if (c.n_heads % c.n_kv_heads != 0)
    fail(where, "config: num_attention_heads not divisible by num_key_value_heads");
  if (c.head_dim() % 2 != 0) fail(where, "config: head dimension must be even for RoPE");
  check_vec(m.tok_embeddings, static_cast<size_t>(c.vocab_size) * c.dim, where, "embed_tokens");
  check_vec(m.final_norm, c.dim, where, "norm");
  if (static_cast<int>(m.layers.size()) != c.n_layers)
    fail(where, "config: " + std::to_string(c.n_layers) + " layers expected, " +
                    std::to_string(m.layers.size()) + " found");
  for (int i = 0; i < c.n_layers; ++i)
    if (!m.layer_source || m.layer_resident(i)) validate_layer(c, m.layers[i], i, where);
  check_linear(m.lm_head, c.vocab_size, c.dim, where, "lm_head");
}

void validate_layer(const LlamaConfig& c, const LlamaLayer& L, int i, const std::string& where) {
  const std::string p = "layers." + std::to_string(i) + ".";
  check_vec(L.attn_norm, c.dim, where, p + "input_layernorm");
  check_vec(L.ffn_norm, c.dim, where, p + "post_attention_layernorm");
  if (c.moe()) {
    if (L.experts.size() != static_cast<size_t>(c.n_experts))
      fail(where, "layer " + std::to_string(i) + ": " + std::to_string(L.experts.size()) +
                      " experts, the config has " + std::to_string(c.n_experts));
    check_linear(L.router, c.n_experts, c.dim, where, p + "block_sparse_moe.gate");
    if (L.router.packed || L.router.lr.rank > 0)
      fail(where, "tensor '" + p + "block_sparse_moe.gate': the router is never quantized");
  } else if (!L.experts.empty() || !L.router.w.empty()) {
    fail(where, "layer " + std::to_string(i) + ": experts in a model without MoE");
  }
  for (const auto& t : layer_linears(c)) {
    const Linear& l = t.of(L);
    check_linear(l, static_cast<int>(linear_dim(c, t.out)), static_cast<int>(linear_dim(c, t.in)),
                 where, p + t.name);
    // Biases where the family has them (q/k/v of qkv_bias), nowhere else.
    const bool biased = c.qkv_bias && t.group == 0;
    if (biased) check_vec(l.bias, static_cast<size_t>(l.d_out), where, p + t.name + ".bias");
    if (!biased && !l.bias.empty())
      fail(where, "tensor '" + p + t.name + ".bias': the config has no bias for this linear");
  }
  if (c.qk_norm) {
    check_vec(L.q_norm, static_cast<size_t>(c.head_dim()), where, p + "self_attn.q_norm");
    check_vec(L.k_norm, static_cast<size_t>(c.head_dim()), where, p + "self_attn.k_norm");
  }
}

}  // namespace lrc
