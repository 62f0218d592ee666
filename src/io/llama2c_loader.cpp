// llama2.c checkpoint loader (legacy "version 0" export of karpathy/llama2.c, run.c):
//
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   float32 token_embedding_table [vocab, dim]
//           rms_att_weight        [layers, dim]
//           wq [layers, dim, dim]   wk, wv [layers, kv_dim, dim]   wo [layers, dim, dim]
//           rms_ffn_weight        [layers, dim]
//           w1 [layers, hidden, dim]  w2 [layers, dim, hidden]  w3 [layers, hidden, dim]
//           rms_final_weight      [dim]
//           freq_cis_real, freq_cis_imag  [seq_len, head_size/2] each (unused: RoPE is recomputed)
//           wcls [vocab, dim]     only when vocab_size < 0 (untied classifier)
//
// w1 = gate, w2 = down, w3 = up. q/k rows are in interleaved-RoPE order (rope_permute.h).
#include <cstring>
#include <string>

#include "lrc/core/error.h"
#include "lrc/io/hf_tensor_map.h"
#include "lrc/io/mapped_file.h"
#include "lrc/io/model_loader.h"

namespace lrc {

namespace {
constexpr int32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c export versions >= 1
}

LlamaModel load_llama2c_model(const std::string& file) {
  const MappedFile f(file);
  int32_t h[7];
  if (f.size() < sizeof h)
    fail(file, "truncated: " + std::to_string(f.size()) +
                   " bytes, too short for the 28-byte llama2.c header");
  std::memcpy(h, f.data(), sizeof h);
  if (h[0] == kVersionedMagic)
    fail(file, "llama2.c export version " + std::to_string(h[1]) +
                   " is not supported (only the legacy version-0 float32 format)");
  const char* names[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                          "n_kv_heads", "vocab_size", "seq_len"};
  for (int i = 0; i < 7; ++i)
    if ((i == 5 ? (h[i] == 0) : (h[i] <= 0)) || h[i] > (1 << 24) || h[i] < -(1 << 24))
      fail(file, std::string("header field '") + names[i] + "' = " + std::to_string(h[i]) +
                     " is not a valid llama2.c header (not a llama2.c version-0 checkpoint?)");

  LlamaModel m;
  LlamaConfig& c = m.cfg;
  c.arch = "llama";
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.tied_embeddings = h[5] > 0;  // negative vocab_size: a separate classifier follows
  c.max_seq_len = h[6];
  c.rope = RopeStyle::Interleaved;
  c.rope_theta = 10000.f;
  c.norm_eps = 1e-5f;
  if (c.dim % c.n_heads != 0 || c.n_heads % c.n_kv_heads != 0 || c.head_dim() % 2 != 0)
    fail(file, "header: dim " + std::to_string(c.dim) + ", n_heads " + std::to_string(c.n_heads) +
                   ", n_kv_heads " + std::to_string(c.n_kv_heads) + " are inconsistent");

  const uint64_t dim = c.dim, hidden = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
  const uint64_t kv_dim = static_cast<uint64_t>(c.n_kv_heads) * c.head_dim();
  const uint64_t freq = static_cast<uint64_t>(c.max_seq_len) * c.head_dim() / 2;
  const uint64_t n_floats = V * dim + L * dim + L * dim * dim + 2 * L * kv_dim * dim +
                            L * dim * dim + L * dim + 3 * L * hidden * dim + dim + 2 * freq +
                            (c.tied_embeddings ? 0 : V * dim);
  const uint64_t want = sizeof h + 4 * n_floats;
  if (f.size() != want)
    fail(file, (f.size() < want ? "truncated: " : "size mismatch: ") + std::to_string(f.size()) +
                   " bytes, the header (dim " + std::to_string(c.dim) + ", hidden_dim " +
                   std::to_string(c.hidden_dim) + ", n_layers " + std::to_string(c.n_layers) +
                   ", vocab_size " + std::to_string(h[5]) + ") implies " + std::to_string(want));

  // Sequential reader over the float section.
  const uint8_t* p = f.data() + sizeof h;
  auto take = [&](std::vector<float>& dst, uint64_t n) {
    dst.resize(n);
    std::memcpy(dst.data(), p, n * 4);
    p += n * 4;
  };
  auto per_layer = [&](auto member, uint64_t n) {  // one [layers, ...] block
    for (auto& layer : m.layers) take(member(layer), n);
  };
  auto lin = [](Linear& l, uint64_t d_out, uint64_t d_in) -> std::vector<float>& {
    l.d_out = static_cast<int>(d_out);
    l.d_in = static_cast<int>(d_in);
    return l.w;
  };
  m.layers.resize(L);
  take(m.tok_embeddings, V * dim);
  per_layer([](LlamaLayer& x) -> std::vector<float>& { return x.attn_norm; }, dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.wq, dim, dim); }, dim* dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.wk, kv_dim, dim); }, kv_dim* dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.wv, kv_dim, dim); }, kv_dim* dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.wo, dim, dim); }, dim* dim);
  per_layer([](LlamaLayer& x) -> std::vector<float>& { return x.ffn_norm; }, dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.w_gate, hidden, dim); }, hidden* dim);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.w_down, dim, hidden); }, dim* hidden);
  per_layer(
      [&](LlamaLayer & x) -> auto& { return lin(x.w_up, hidden, dim); }, hidden* dim);
  take(m.final_norm, dim);
  p += 2 * freq * 4;  // freq_cis_real, freq_cis_imag
  m.lm_head.d_out = c.vocab_size;
  m.lm_head.d_in = c.dim;
  if (c.tied_embeddings)
    m.lm_head.w = m.tok_embeddings;
  else
    take(m.lm_head.w, V * dim);

  for (const auto& v : hf_tensor_views(m)) m.source_dtypes[v.name] = "F32";
  validate_model(m, file);
  return m;
}

}  // namespace lrc
