// The Llama forward pass. One layer, for N = n_seq * n_new token rows of h [N x dim]:
//
//   x   = rmsnorm(h) ⊙ attn_norm                       -> hook(QKV)
//   q,k,v = x Wqᵀ, x Wkᵀ, x Wvᵀ                         (Backend::linear over all rows)
//   q,k = rope(q), rope(k);  q,k = H_qk · head          (online rotation, if any)
//   k,v = kv_quantize(k), kv_quantize(v)                (if the KV cache is quantized)
//   a   = causal GQA attention(q, K, V);  a = H_o · a   -> hook(O)
//   h  += a Woᵀ
//   x   = rmsnorm(h) ⊙ ffn_norm                        -> hook(GateUp)
//   g   = silu(x Wgᵀ) ⊙ (x Wuᵀ);  g = H_down · g        -> hook(Down)
//   h  += g Wdᵀ
//
// Token trees (zero-shot scoring: a context and its continuations, several examples in one
// pass) run it too, with RoPE positions and attention per segment (struct Segment below).
//
// Prefill and decode run the same code: new keys/values are written into a K/V store (a
// scratch buffer for prefill, the cache for decode) and the queries at positions
// pos0 .. pos0+n_new-1 attend every stored key up to their own position.
#include "lrc/model/forward.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "lrc/core/error.h"
#include "lrc/kernels/backend.h"
#include "lrc/kernels/rope.h"

namespace lrc {

const char* linear_group_name(LinearGroup g) {
  switch (g) {
    case LinearGroup::QKV:
      return "qkv";
    case LinearGroup::O:
      return "o";
    case LinearGroup::GateUp:
      return "gate_up";
    case LinearGroup::Down:
      return "down";
  }
  return "?";
}

namespace {

// A streamed model's layer must be loaded before the forward reaches it.
void check_resident(const LlamaModel& m, int layer) {
  if (m.layer_source && !m.layer_resident(layer))
    fail("forward", "layer " + std::to_string(layer) + " is not loaded (LlamaModel::load_layer)");
}

void check_transform(const OnlineTransformPtr& t, int size, const char* name) {
  if (t && t->size() != size)
    fail("forward", std::string("online transform '") + name + "' acts on rows of " +
                        std::to_string(t->size()) + ", the model needs " + std::to_string(size));
}

// Scratch buffers reused across layers and calls: allocating them afresh for every layer costs
// page faults (~10% of a prefill). One set per nesting depth and thread, so a hook that itself
// runs a forward pass gets its own buffers.
struct Workspace {
  std::vector<float> x, q, att, g, u, k, v;
};

class WorkspaceLease {
 public:
  WorkspaceLease() {
    if (depth_ == static_cast<int>(pool_.size())) pool_.push_back(std::make_unique<Workspace>());
    ws_ = pool_[depth_++].get();
  }
  ~WorkspaceLease() { --depth_; }
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;
  Workspace* operator->() const { return ws_; }
  Workspace& operator*() const { return *ws_; }

 private:
  Workspace* ws_;
  static thread_local std::vector<std::unique_ptr<Workspace>> pool_;
  static thread_local int depth_;
};
thread_local std::vector<std::unique_ptr<Workspace>> WorkspaceLease::pool_;
thread_local int WorkspaceLease::depth_ = 0;

// v.data() with room for at least n floats (contents unspecified).
float* room(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// The feed-forward half of a layer on h [N x dim], in place (scratch from ws).
void ffn_core(const LlamaModel& m, int layer, float* h, int64_t N, LinearInputHook* hook,
              Workspace& ws) {
  check_resident(m, layer);
  const LlamaConfig& c = m.cfg;
  const LlamaLayer& L = m.layers[layer];
  const Backend& be = m.run_backend();
  const int dim = c.dim, hidden = c.hidden_dim;
  check_transform(m.online_down, hidden, "online_down");
  float* x = room(ws.x, N * dim);
  float* g = room(ws.g, N * hidden);
  float* u = room(ws.u, N * hidden);
  // ---- feed-forward block (SwiGLU)
  be.rmsnorm(h, L.ffn_norm.data(), N, dim, c.norm_eps, x);
  if (hook) hook->on_input(layer, LinearGroup::GateUp, x, N, dim);
  be.linear(L.w_gate, x, N, g);
  be.linear(L.w_up, x, N, u);
  be.swiglu(g, u, N * hidden);
  if (m.online_down) be.online_transform(*m.online_down, g, N);
  if (hook) hook->on_input(layer, LinearGroup::Down, g, N, hidden);
  be.linear(L.w_down, g, N, x);
  be.add(h, x, N * dim);
}

// One layer on h [n_seq*n_new x dim]. The new keys/values of sequence s go to rows
// pos0 .. pos0+n_new-1 of k_store/v_store + s*kv_stride (rows of kv_dim); rows before pos0
// must already hold the earlier positions. Stores are contiguous over all new rows: either one
// sequence, or pos0 == 0 and kv_stride == n_new*kv_dim.
//
// segs (token trees, prefill only: n_seq == 1, pos0 == 0): the rows form segments instead of
// one sequence; segment s (rows row .. row+n-1) sits at positions pos .. pos+n-1 and attends
// the pos store rows from key0 on (its tree's context) and then its own rows. A segment whose
// own keys are not already right after those first moves them there, over rows of earlier
// segments of its tree, which are done by then.
struct Segment {
  int64_t row = 0;   // first row (in h, and in the store for its new keys)
  int n = 0;         // rows
  int pos = 0;       // position of its first row
  int64_t key0 = 0;  // store row of the first key it sees
};

void layer_core(const LlamaModel& m, int layer, float* h, int n_seq, int n_new, int pos0,
                float* k_store, float* v_store, int64_t kv_stride, LinearInputHook* hook,
                bool with_ffn = true, const std::vector<Segment>* segs = nullptr) {
  check_resident(m, layer);
  const LlamaConfig& c = m.cfg;
  const LlamaLayer& L = m.layers[layer];
  const Backend& be = m.run_backend();
  const int dim = c.dim, hd = c.head_dim();
  const int q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const int64_t N = static_cast<int64_t>(n_seq) * n_new;
  if (!(n_seq == 1 || (pos0 == 0 && kv_stride == static_cast<int64_t>(n_new) * kv_dim)))
    fail("layer_forward", "K/V store is not contiguous over the new rows");
  check_transform(m.online_qk, hd, "online_qk");
  check_transform(m.online_o, q_dim, "online_o");

  WorkspaceLease ws;
  float* x = room(ws->x, N * dim);
  float* q = room(ws->q, N * q_dim);
  float* att = room(ws->att, N * q_dim);

  // ---- attention block
  be.rmsnorm(h, L.attn_norm.data(), N, dim, c.norm_eps, x);
  if (hook) hook->on_input(layer, LinearGroup::QKV, x, N, dim);
  float* k_new = k_store + static_cast<int64_t>(pos0) * kv_dim;
  float* v_new = v_store + static_cast<int64_t>(pos0) * kv_dim;
  be.linear(L.wq, x, N, q);
  be.linear(L.wk, x, N, k_new);
  be.linear(L.wv, x, N, v_new);

  if (!segs) {
    const RopeTable rope(hd, c.rope_theta, pos0, n_new);
    be.rope(q, N, c.n_heads, hd, c.rope, rope, n_new, 0);
    be.rope(k_new, N, c.n_kv_heads, hd, c.rope, rope, n_new, 0);
  } else {
    int end = 1;
    for (const Segment& sg : *segs) end = std::max(end, sg.pos + sg.n);
    const RopeTable rope(hd, c.rope_theta, 0, end);
    for (const Segment& sg : *segs) {
      be.rope(q + sg.row * q_dim, sg.n, c.n_heads, hd, c.rope, rope, sg.n, sg.pos);
      be.rope(k_new + sg.row * kv_dim, sg.n, c.n_kv_heads, hd, c.rope, rope, sg.n, sg.pos);
    }
  }
  if (m.online_qk) {  // each head vector is one row of length hd
    be.online_transform(*m.online_qk, q, N * c.n_heads);
    be.online_transform(*m.online_qk, k_new, N * c.n_kv_heads);
  }
  be.kv_quantize(k_new, N * c.n_kv_heads, hd, m.kv);
  be.kv_quantize(v_new, N * c.n_kv_heads, hd, m.kv);

  const AttentionShape shape{c.n_heads, c.n_kv_heads, hd};
  if (!segs) {
    be.attention(q, k_store, v_store, n_seq, n_new, pos0, kv_stride, shape, att);
  } else {
    for (const Segment& sg : *segs) {
      const int64_t own = sg.key0 + sg.pos;  // where its keys must be
      if (own != sg.row) {
        std::copy_n(k_store + sg.row * kv_dim, static_cast<int64_t>(sg.n) * kv_dim,
                    k_store + own * kv_dim);
        std::copy_n(v_store + sg.row * kv_dim, static_cast<int64_t>(sg.n) * kv_dim,
                    v_store + own * kv_dim);
      }
      be.attention(q + sg.row * q_dim, k_store + sg.key0 * kv_dim, v_store + sg.key0 * kv_dim, 1,
                   sg.n, sg.pos, kv_stride, shape, att + sg.row * q_dim);
    }
  }
  if (m.online_o) be.online_transform(*m.online_o, att, N);
  if (hook) hook->on_input(layer, LinearGroup::O, att, N, q_dim);
  be.linear(L.wo, att, N, x);
  be.add(h, x, N * dim);

  if (with_ffn) ffn_core(m, layer, h, N, hook, *ws);
}

}  // namespace

void embed_tokens(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= m.cfg.vocab_size)
      fail("embed_tokens", "token id " + std::to_string(t) + " outside the vocabulary (size " +
                               std::to_string(m.cfg.vocab_size) + ")");
  }
  m.run_backend().embed(m.tok_embeddings.data(), m.cfg.dim, tokens, n, h);
}

namespace {
void prefill_layer(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                   LinearInputHook* hook, bool with_ffn) {
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()))
    fail("layer_forward", "layer " + std::to_string(layer) + " out of range");
  const int64_t kv_dim = static_cast<int64_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  const int64_t n_kv = static_cast<int64_t>(n_seq) * seq_len * kv_dim;
  WorkspaceLease ws;
  layer_core(m, layer, h, n_seq, seq_len, 0, room(ws->k, n_kv), room(ws->v, n_kv), seq_len * kv_dim,
             hook, with_ffn);
}
}  // namespace

std::vector<float> tree_hidden_states(const LlamaModel& m, const int32_t* tokens,
                                      const std::vector<TokenTree>& trees) {
  std::vector<Segment> segs;
  int64_t n = 0;
  for (const TokenTree& t : trees) {
    if (t.context <= 0) fail("tree_hidden_states", "a tree needs at least one context token");
    const int64_t key0 = n;
    segs.push_back({n, t.context, 0, key0});
    n += t.context;
    for (int len : t.branches) {
      if (len <= 0) fail("tree_hidden_states", "empty branch");
      segs.push_back({n, len, t.context, key0});
      n += len;
    }
  }
  if (n > std::numeric_limits<int>::max()) fail("tree_hidden_states", "too many rows");
  const int dim = m.cfg.dim;
  std::vector<float> h(static_cast<size_t>(n) * dim);
  embed_tokens(m, tokens, n, h.data());
  const int64_t kv_dim = static_cast<int64_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  WorkspaceLease ws;
  float* k = room(ws->k, n * kv_dim);
  float* v = room(ws->v, n * kv_dim);
  for (int l = 0; l < m.cfg.n_layers; ++l)
    layer_core(m, l, h.data(), 1, static_cast<int>(n), 0, k, v, n * kv_dim, nullptr, true, &segs);
  return h;
}

void layer_forward(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                   LinearInputHook* hook) {
  prefill_layer(m, layer, h, n_seq, seq_len, hook, /*with_ffn=*/true);
}

void attention_block(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                     LinearInputHook* hook) {
  prefill_layer(m, layer, h, n_seq, seq_len, hook, /*with_ffn=*/false);
}

void ffn_block(const LlamaModel& m, int layer, float* h, int64_t n_tokens, LinearInputHook* hook) {
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()))
    fail("ffn_block", "layer " + std::to_string(layer) + " out of range");
  WorkspaceLease ws;
  ffn_core(m, layer, h, n_tokens, hook, *ws);
}

void output_logits(const LlamaModel& m, const float* h, int64_t n, float* logits) {
  const Backend& be = m.run_backend();
  std::vector<float> x(n * m.cfg.dim);
  be.rmsnorm(h, m.final_norm.data(), n, m.cfg.dim, m.cfg.norm_eps, x.data());
  be.linear(m.lm_head, x.data(), n, logits);
}

std::vector<float> forward_logits(const LlamaModel& m, const int32_t* tokens, int n_seq,
                                  int seq_len) {
  const int64_t N = static_cast<int64_t>(n_seq) * seq_len;
  std::vector<float> h(N * m.cfg.dim);
  embed_tokens(m, tokens, N, h.data());
  for (int l = 0; l < m.cfg.n_layers; ++l) layer_forward(m, l, h.data(), n_seq, seq_len);
  std::vector<float> logits(N * m.cfg.vocab_size);
  output_logits(m, h.data(), N, logits.data());
  return logits;
}

double sequences_nll(const LlamaModel& m, const int32_t* tokens, int n_seq, int seq_len,
                     int64_t* count, int first_target) {
  if (seq_len < 2 || first_target < 1 || first_target >= seq_len)
    fail("sequences_nll", "need seq_len >= 2 and 1 <= first_target < seq_len (got " +
                              std::to_string(seq_len) + ", " + std::to_string(first_target) + ")");
  const int T = seq_len - 1;  // inputs per sequence; row t predicts token t+1
  const int dim = m.cfg.dim, vocab = m.cfg.vocab_size;
  std::vector<int32_t> in(static_cast<size_t>(n_seq) * T);
  for (int s = 0; s < n_seq; ++s)
    std::copy_n(tokens + static_cast<int64_t>(s) * seq_len, T,
                in.data() + static_cast<size_t>(s) * T);
  std::vector<float> h(in.size() * dim);
  embed_tokens(m, in.data(), static_cast<int64_t>(in.size()), h.data());
  for (int l = 0; l < m.cfg.n_layers; ++l) layer_forward(m, l, h.data(), n_seq, T);

  // Rows that predict a counted target: t in [first_target-1, T). Logits a block at a time
  // (about 32 MB of logits per block).
  std::vector<int64_t> rows;
  std::vector<int32_t> targets;
  for (int s = 0; s < n_seq; ++s)
    for (int t = first_target - 1; t < T; ++t) {
      const int32_t y = tokens[static_cast<int64_t>(s) * seq_len + t + 1];
      if (y < 0 || y >= vocab)
        fail("sequences_nll", "target token id " + std::to_string(y) + " outside the vocabulary");
      rows.push_back(static_cast<int64_t>(s) * T + t);
      targets.push_back(y);
    }
  const int64_t n_rows = static_cast<int64_t>(rows.size());
  const int64_t block = std::max<int64_t>(16, (int64_t{8} << 20) / vocab);
  std::vector<float> hb(std::min(block, n_rows) * dim), logits(std::min(block, n_rows) * vocab);
  std::vector<double> nll(std::min(block, n_rows));
  double total = 0.0;
  for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
    const int64_t nb = std::min(block, n_rows - r0);
    for (int64_t i = 0; i < nb; ++i)
      std::copy_n(h.data() + rows[r0 + i] * dim, dim, hb.data() + i * dim);
    output_logits(m, hb.data(), nb, logits.data());
    m.run_backend().nll_rows(logits.data(), nb, vocab, targets.data() + r0, nll.data());
    for (int64_t i = 0; i < nb; ++i) total += nll[i];
  }
  if (count) *count = n_rows;
  return total;
}

Decoder::Decoder(const LlamaModel& m, int max_seq_len) : m_(m), max_seq_len_(max_seq_len) {
  if (max_seq_len <= 0) fail("Decoder", "max_seq_len must be positive");
  const size_t kv_dim = static_cast<size_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  k_cache_.assign(static_cast<size_t>(m.cfg.n_layers) * max_seq_len * kv_dim, 0.f);
  v_cache_.assign(k_cache_.size(), 0.f);
  logits_.resize(m.cfg.vocab_size);
}

const std::vector<float>& Decoder::forward(const int32_t* tokens, int n, float* all_logits) {
  if (n <= 0) fail("Decoder", "forward needs at least one token");
  if (pos_ + n > max_seq_len_)
    fail("Decoder", "context full: " + std::to_string(pos_) + " + " + std::to_string(n) +
                        " tokens exceed max_seq_len " + std::to_string(max_seq_len_));
  const int dim = m_.cfg.dim;
  const int64_t layer_size =
      static_cast<int64_t>(max_seq_len_) * m_.cfg.n_kv_heads * m_.cfg.head_dim();
  std::vector<float> h(static_cast<size_t>(n) * dim);
  embed_tokens(m_, tokens, n, h.data());
  for (int l = 0; l < m_.cfg.n_layers; ++l)
    layer_core(m_, l, h.data(), 1, n, pos_, k_cache_.data() + l * layer_size,
               v_cache_.data() + l * layer_size, layer_size, nullptr);
  pos_ += n;
  if (all_logits) {
    output_logits(m_, h.data(), n, all_logits);
    std::copy_n(all_logits + static_cast<int64_t>(n - 1) * m_.cfg.vocab_size, m_.cfg.vocab_size,
                logits_.data());
  } else {
    output_logits(m_, h.data() + static_cast<int64_t>(n - 1) * dim, 1, logits_.data());
  }
  return logits_;
}

void Decoder::truncate(int p) {
  if (p < 0 || p > pos_)
    fail("Decoder", "truncate(" + std::to_string(p) + ") outside 0.." + std::to_string(pos_));
  pos_ = p;
}

}  // namespace lrc
