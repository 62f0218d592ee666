// The Llama forward pass. One layer, for N = n_seq * n_new token rows of h [N x dim]:
//
//   x   = rmsnorm(h) ⊙ attn_norm                       -> hook(QKV)
//   q,k,v = x Wqᵀ, x Wkᵀ, x Wvᵀ                         (Backend::linear over all rows;
//                                                        + b (qwen2); phi3: one fused product)
//   q,k = rmsnorm(head) ⊙ q_norm, k_norm                (qwen3 only)
//   q,k = rope(q), rope(k);  q,k = H_qk · head          (online rotation, if any; RoPE's
//                                                        frequencies scaled for llama3/phi3)
//   k,v = kv_quantize(k), kv_quantize(v)                (if the KV cache is quantized)
//   a   = causal GQA attention(q, K, V);  a = H_o · a   -> hook(O)   (mistral: sliding window)
//   h  += a Woᵀ
//   x   = rmsnorm(h) ⊙ ffn_norm                        -> hook(GateUp)
//   g   = silu(x Wgᵀ) ⊙ (x Wuᵀ);  g = H_down · g        -> hook(Down)  (phi3: one gate_up product)
//   h  += g Wdᵀ
//
// Token trees (zero-shot scoring: a context and its continuations, several examples in one
// pass) run it too, with RoPE positions and attention per segment (struct Segment below).
//
// Prefill and decode run the same code: new keys/values are written into a K/V store (a
// scratch buffer for prefill, the cache for decode) and the queries at positions
// pos0 .. pos0+n_new-1 attend every stored key up to their own position.
//
// Memory: the public functions take and return host arrays; inside, every activation lives in
// the backend's memory (kernels/backend.h). For the CPU backends that is host memory and the
// caller's arrays are used in place (nothing is copied); for a device backend the inputs are
// uploaded once at the start of a call (tokens, or h for the per-layer calls of the
// calibration pipeline) and the results downloaded once at its end (logits, NLL, h).
#include "lrc/model/forward.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
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
// runs a forward pass gets its own buffers. (Host backends only; see Scratch.)
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

// The scratch of one call, in the backend's memory: a leased host Workspace for host backends
// (as before), buffers of this call for a device backend (its allocator is stream-ordered and
// pooled, so allocating per call costs microseconds, and buffers never outlive the backend).
enum Slot { kX, kQ, kAtt, kG, kU, kK, kV, kSlots };
class Scratch {
 public:
  explicit Scratch(const Backend& be) : be_(be) {
    if (be.host_memory()) lease_.emplace();
  }
  // Room for n floats in `slot` (contents unspecified).
  float* get(Slot slot, int64_t n) {
    if (lease_) {
      Workspace& w = **lease_;
      std::vector<float>* v[kSlots] = {&w.x, &w.q, &w.att, &w.g, &w.u, &w.k, &w.v};
      return room(*v[slot], n);
    }
    Buffer<float>& b = dev_[slot];
    if (b.size() < static_cast<size_t>(n)) b = Buffer<float>(be_, static_cast<size_t>(n));
    return b.data();
  }

 private:
  const Backend& be_;
  std::optional<WorkspaceLease> lease_;
  Buffer<float> dev_[kSlots];
};

// A caller's host array as the backend sees it: the array itself for a host-memory backend;
// otherwise a copy in backend memory, uploaded at construction when `in`, written back by
// download_to().
template <typename T>
class Staged {
 public:
  Staged(const Backend& be, const T* host, int64_t n, bool in) : be_(be), n_(n) {
    if (be.host_memory()) {
      p_ = const_cast<T*>(host);
      return;
    }
    buf_ = Buffer<T>(be, static_cast<size_t>(n));
    p_ = buf_.data();
    if (in) be.upload(p_, host, bytes());
  }
  T* get() const { return p_; }
  void download_to(T* host) const {
    if (!be_.host_memory()) be_.download(host, p_, bytes());
  }

 private:
  size_t bytes() const { return static_cast<size_t>(n_) * sizeof(T); }
  const Backend& be_;
  int64_t n_;
  T* p_ = nullptr;
  Buffer<T> buf_;
};

// The hook reads host memory, unless it takes the backend's: a device backend's x is
// downloaded for it, or finished (synchronized) and handed over as it is.
void show_input(const Backend& be, LinearInputHook* hook, int layer, LinearGroup g, const float* x,
                int64_t n, int d) {
  if (!hook) return;
  if (be.host_memory()) return hook->on_input(layer, g, x, n, d);
  if (hook->takes_backend_memory()) {
    be.synchronize();
    return hook->on_input(layer, g, x, n, d);
  }
  std::vector<float> host(static_cast<size_t>(n) * d);
  be.download(host.data(), x, host.size() * sizeof(float));
  hook->on_input(layer, g, host.data(), n, d);
}

// Copies `rows` rows of `width` floats from src to dst (backend memory) where the ranges may
// overlap with dst before src: in pieces no longer than the gap, front to back.
void move_rows_down(const Backend& be, float* dst, const float* src, int64_t rows, int64_t width) {
  const int64_t gap = (src - dst) / width;  // rows; > 0
  for (int64_t r = 0; r < rows; r += gap) {
    const int64_t nr = std::min(gap, rows - r);
    be.copy(dst + r * width, src + r * width, static_cast<size_t>(nr * width) * sizeof(float));
  }
}

// y [n x d_out] = L(x) [+ L.bias]: every linear of the layer runs through here.
void run_linear(const Backend& be, const Linear& L, const float* x, int64_t n, float* y) {
  be.linear(L, x, n, y);
  if (!L.bias.empty()) be.add_bias(y, L.bias.data(), n, L.d_out);
}

// The column blocks of y [n x sum(widths)] (a fused projection's output) into the arrays
// dst[i] [n x widths[i]], in order.
void split_columns(const Backend& be, const float* y, int64_t n,
                   std::initializer_list<std::pair<float*, int>> parts) {
  int total = 0;
  for (const auto& [dst, w] : parts) total += w;
  int col = 0;
  for (const auto& [dst, w] : parts) {
    be.copy_2d(dst, static_cast<size_t>(w) * sizeof(float), y + col,
               static_cast<size_t>(total) * sizeof(float), static_cast<size_t>(w) * sizeof(float),
               static_cast<size_t>(n));
    col += w;
  }
}

// y [N x dim] = the MoE block's output for its input x [N x dim] (backend memory; forward.h).
void moe_ffn(const LlamaModel& m, int layer, const float* x, int64_t N, float* y) {
  const LlamaConfig& c = m.cfg;
  const LlamaLayer& L = m.layers[static_cast<size_t>(layer)];
  const Backend& be = m.run_backend();
  const MoeRouting r = moe_route(m, layer, x, N);
  be.zero(y, static_cast<size_t>(N) * c.dim * sizeof(float));
  int64_t most = 0;
  for (const auto& rows : r.rows) most = std::max<int64_t>(most, static_cast<int64_t>(rows.size()));
  Buffer<float> xe(be, static_cast<size_t>(most) * c.dim),
      ge(be, static_cast<size_t>(most) * c.hidden_dim), ye(be, static_cast<size_t>(most) * c.dim);
  for (int e = 0; e < c.n_experts; ++e) {
    const auto& rows = r.rows[static_cast<size_t>(e)];
    const int64_t n = static_cast<int64_t>(rows.size());
    if (n == 0) continue;
    be.gather_rows(xe.data(), x, rows.data(), n, c.dim);
    expert_down_input(m, layer, e, xe.data(), n, ge.data());
    run_linear(be, L.experts[static_cast<size_t>(e)].w_down, ge.data(), n, ye.data());
    be.scatter_add_rows(y, ye.data(), rows.data(), r.weights[static_cast<size_t>(e)].data(), n,
                        c.dim);
  }
}

// The feed-forward half of a layer on h [N x dim], in place (scratch from ws).
void ffn_core(const LlamaModel& m, int layer, float* h, int64_t N, LinearInputHook* hook,
              Scratch& ws) {
  check_resident(m, layer);
  const LlamaConfig& c = m.cfg;
  const LlamaLayer& L = m.layers[layer];
  const Backend& be = m.run_backend();
  const int dim = c.dim, hidden = c.hidden_dim;
  check_transform(m.online_down, hidden, "online_down");
  float* x = ws.get(kX, N * dim);
  float* g = ws.get(kG, N * hidden);
  float* u = ws.get(kU, N * hidden);
  // ---- feed-forward block (SwiGLU)
  be.rmsnorm(h, L.ffn_norm.data(), N, dim, c.norm_eps, x);
  show_input(be, hook, layer, LinearGroup::GateUp, x, N, dim);
  if (c.moe()) {  // mixtral: the experts' outputs, weighted, summed (then h += as HF does)
    float* y = ws.get(kQ, N * dim);
    moe_ffn(m, layer, x, N, y);
    be.add(h, y, N * dim);
    return;
  }
  if (c.fused_proj) {  // phi3: gate_up [N x 2 hidden], gate columns first
    float* gu = ws.get(kQ, N * 2 * hidden);
    run_linear(be, L.w_gate_up, x, N, gu);
    split_columns(be, gu, N, {{g, hidden}, {u, hidden}});
  } else {
    run_linear(be, L.w_gate, x, N, g);
    run_linear(be, L.w_up, x, N, u);
  }
  be.swiglu(g, u, N * hidden);
  if (m.online_down) be.online_transform(*m.online_down, g, N);
  show_input(be, hook, layer, LinearGroup::Down, g, N, hidden);
  run_linear(be, L.w_down, g, N, x);
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
  const int q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const int64_t N = static_cast<int64_t>(n_seq) * n_new;
  if (!(n_seq == 1 || (pos0 == 0 && kv_stride == static_cast<int64_t>(n_new) * kv_dim)))
    fail("layer_forward", "K/V store is not contiguous over the new rows");
  check_transform(m.online_qk, hd, "online_qk");
  check_transform(m.online_o, q_dim, "online_o");

  Scratch ws(be);
  float* x = ws.get(kX, N * dim);
  float* q = ws.get(kQ, N * q_dim);
  float* att = ws.get(kAtt, N * q_dim);

  // ---- attention block
  be.rmsnorm(h, L.attn_norm.data(), N, dim, c.norm_eps, x);
  show_input(be, hook, layer, LinearGroup::QKV, x, N, dim);
  float* k_new = k_store + static_cast<int64_t>(pos0) * kv_dim;
  float* v_new = v_store + static_cast<int64_t>(pos0) * kv_dim;
  if (c.fused_proj) {  // phi3: one product [N x q+2kv], then q, k, v as its column blocks
    float* qkv = ws.get(kG, N * (q_dim + 2 * kv_dim));
    run_linear(be, L.wqkv, x, N, qkv);
    split_columns(be, qkv, N, {{q, q_dim}, {k_new, kv_dim}, {v_new, kv_dim}});
  } else {
    run_linear(be, L.wq, x, N, q);
    run_linear(be, L.wk, x, N, k_new);
    run_linear(be, L.wv, x, N, v_new);
  }
  if (c.qk_norm) {  // qwen3: RMSNorm over each head vector, before RoPE (and H_qk after it)
    be.rmsnorm(q, L.q_norm.data(), N * c.n_heads, hd, c.norm_eps, q);
    be.rmsnorm(k_new, L.k_norm.data(), N * c.n_kv_heads, hd, c.norm_eps, k_new);
  }

  const RopeScaling* scaling = c.rope_scaling.enabled() ? &c.rope_scaling : nullptr;
  if (!segs) {
    const std::shared_ptr<const RopeTable> rope =
        shared_rope_table(hd, c.rope_theta, pos0, n_new, scaling);
    be.rope(q, N, c.n_heads, hd, c.rope, *rope, n_new, 0);
    be.rope(k_new, N, c.n_kv_heads, hd, c.rope, *rope, n_new, 0);
  } else {
    int end = 1;
    for (const Segment& sg : *segs) end = std::max(end, sg.pos + sg.n);
    const std::shared_ptr<const RopeTable> rope =
        shared_rope_table(hd, c.rope_theta, 0, end, scaling);
    for (const Segment& sg : *segs) {
      be.rope(q + sg.row * q_dim, sg.n, c.n_heads, hd, c.rope, *rope, sg.n, sg.pos);
      be.rope(k_new + sg.row * kv_dim, sg.n, c.n_kv_heads, hd, c.rope, *rope, sg.n, sg.pos);
    }
  }
  if (m.online_qk) {  // each head vector is one row of length hd
    be.online_transform(*m.online_qk, q, N * c.n_heads);
    be.online_transform(*m.online_qk, k_new, N * c.n_kv_heads);
  }
  be.kv_quantize(k_new, N * c.n_kv_heads, hd, m.kv);
  be.kv_quantize(v_new, N * c.n_kv_heads, hd, m.kv);

  const AttentionShape shape{c.n_heads, c.n_kv_heads, hd, c.sliding_window};
  if (!segs) {
    be.attention(q, k_store, v_store, n_seq, n_new, pos0, kv_stride, shape, att);
  } else {
    for (const Segment& sg : *segs) {
      const int64_t own = sg.key0 + sg.pos;  // where its keys must be
      // own < row: the keys move down over rows of earlier segments of its tree.
      if (own != sg.row) {
        move_rows_down(be, k_store + own * kv_dim, k_store + sg.row * kv_dim, sg.n, kv_dim);
        move_rows_down(be, v_store + own * kv_dim, v_store + sg.row * kv_dim, sg.n, kv_dim);
      }
      be.attention(q + sg.row * q_dim, k_store + sg.key0 * kv_dim, v_store + sg.key0 * kv_dim, 1,
                   sg.n, sg.pos, kv_stride, shape, att + sg.row * q_dim);
    }
  }
  if (m.online_o) be.online_transform(*m.online_o, att, N);
  show_input(be, hook, layer, LinearGroup::O, att, N, q_dim);
  run_linear(be, L.wo, att, N, x);
  be.add(h, x, N * dim);

  if (with_ffn) ffn_core(m, layer, h, N, hook, ws);
}

}  // namespace

MoeRouting route_tokens(const LlamaConfig& c, const float* logits, int64_t n) {
  const int E = c.n_experts, k = c.n_experts_used;
  if (E <= 0 || k < 1 || k > E)
    fail("moe", "config: " + std::to_string(k) + " experts per token of " + std::to_string(E));
  MoeRouting r;
  r.rows.resize(static_cast<size_t>(E));
  r.weights.resize(static_cast<size_t>(E));
  std::vector<double> p(static_cast<size_t>(E));
  std::vector<int> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    const float* l = logits + t * E;
    double mx = -std::numeric_limits<double>::infinity();
    for (int e = 0; e < E; ++e) mx = std::max(mx, static_cast<double>(l[e]));
    if (!std::isfinite(mx))
      fail("moe", "non-finite router logit at token row " + std::to_string(t));
    double sum = 0;
    for (int e = 0; e < E; ++e) sum += p[static_cast<size_t>(e)] = std::exp(l[e] - mx);
    for (int e = 0; e < E; ++e) order[static_cast<size_t>(e)] = e;
    // The k largest probabilities, the lower index first among equals (torch.topk's order on
    // ties is unspecified; ties have probability zero for real-valued logits).
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      const double pa = p[static_cast<size_t>(a)], pb = p[static_cast<size_t>(b)];
      return pa > pb || (pa == pb && a < b);
    });
    double top = 0;
    for (int j = 0; j < k; ++j) top += p[static_cast<size_t>(order[static_cast<size_t>(j)])] / sum;
    for (int j = 0; j < k; ++j) {
      const int e = order[static_cast<size_t>(j)];
      r.rows[static_cast<size_t>(e)].push_back(static_cast<int32_t>(t));
      // HF: softmax in float32, top-k, divided by their sum, cast to the hidden dtype.
      r.weights[static_cast<size_t>(e)].push_back(
          static_cast<float>(p[static_cast<size_t>(e)] / sum / top));
    }
  }
  return r;
}

MoeRouting moe_route(const LlamaModel& m, int layer, const float* x, int64_t n) {
  check_resident(m, layer);
  const Backend& be = m.run_backend();
  if (!be.host_memory())
    fail("forward", "mixtral (MoE) runs on the CPU backends only (backend '" + be.name() +
                        "' keeps activations on a device); use --device cpu");
  const LlamaLayer& L = m.layers[static_cast<size_t>(layer)];
  std::vector<float> logits(static_cast<size_t>(n) * m.cfg.n_experts);
  be.linear(L.router, x, n, logits.data());
  return route_tokens(m.cfg, logits.data(), n);
}

void expert_down_input(const LlamaModel& m, int layer, int e, const float* x, int64_t n, float* g) {
  const LlamaConfig& c = m.cfg;
  const Backend& be = m.run_backend();
  const MoeExpert& X = m.layers[static_cast<size_t>(layer)].experts.at(static_cast<size_t>(e));
  check_transform(m.online_down, c.hidden_dim, "online_down");
  Buffer<float> u(be, static_cast<size_t>(n) * c.hidden_dim);
  run_linear(be, X.w_gate, x, n, g);
  run_linear(be, X.w_up, x, n, u.data());
  be.swiglu(g, u.data(), n * c.hidden_dim);
  if (m.online_down) be.online_transform(*m.online_down, g, n);
}

namespace {

void check_tokens(const LlamaModel& m, const int32_t* tokens, int64_t n, const char* where,
                  const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= m.cfg.vocab_size)
      fail(where, std::string(what) + " id " + std::to_string(t) +
                      " outside the vocabulary (size " + std::to_string(m.cfg.vocab_size) + ")");
  }
}

// h [n x dim] = embeddings of tokens [n] (both backend memory; ids already checked).
void embed_rows(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h) {
  m.run_backend().embed(m.tok_embeddings.data(), m.cfg.vocab_size, m.cfg.dim, tokens, n, h);
}

// One prefill layer on h [(n_seq*seq_len) x dim] (backend memory), K/V in scratch.
void prefill_layer(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                   LinearInputHook* hook, bool with_ffn) {
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()))
    fail("layer_forward", "layer " + std::to_string(layer) + " out of range");
  const int64_t kv_dim = static_cast<int64_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  const int64_t n_kv = static_cast<int64_t>(n_seq) * seq_len * kv_dim;
  Scratch ws(m.run_backend());
  layer_core(m, layer, h, n_seq, seq_len, 0, ws.get(kK, n_kv), ws.get(kV, n_kv), seq_len * kv_dim,
             hook, with_ffn);
}

// logits [n x vocab] = lm_head(rmsnorm(h)), h [n x dim]; all backend memory.
void logits_rows(const LlamaModel& m, const float* h, int64_t n, float* logits) {
  const Backend& be = m.run_backend();
  Scratch ws(be);
  float* x = ws.get(kX, n * m.cfg.dim);
  be.rmsnorm(h, m.final_norm.data(), n, m.cfg.dim, m.cfg.norm_eps, x);
  be.linear(m.lm_head, x, n, logits);
}

// The per-layer entry points on a caller's host h: staged through backend memory.
template <typename F>
void on_host_h(const LlamaModel& m, float* h, int64_t n_rows, F&& run) {
  Staged<float> hs(m.run_backend(), h, n_rows * m.cfg.dim, /*in=*/true);
  run(hs.get());
  hs.download_to(h);
}

}  // namespace

void embed_tokens(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h) {
  check_tokens(m, tokens, n, "embed_tokens", "token");
  const Backend& be = m.run_backend();
  Staged<int32_t> ts(be, tokens, n, /*in=*/true);
  Staged<float> hs(be, h, n * m.cfg.dim, /*in=*/false);
  embed_rows(m, ts.get(), n, hs.get());
  hs.download_to(h);
}

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
  check_tokens(m, tokens, n, "embed_tokens", "token");
  const Backend& be = m.run_backend();
  const int dim = m.cfg.dim;
  std::vector<float> h(static_cast<size_t>(n) * dim);
  Staged<int32_t> ts(be, tokens, n, /*in=*/true);
  Staged<float> hs(be, h.data(), n * dim, /*in=*/false);
  embed_rows(m, ts.get(), n, hs.get());
  const int64_t kv_dim = static_cast<int64_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  Scratch ws(be);
  float* k = ws.get(kK, n * kv_dim);
  float* v = ws.get(kV, n * kv_dim);
  for (int l = 0; l < m.cfg.n_layers; ++l)
    layer_core(m, l, hs.get(), 1, static_cast<int>(n), 0, k, v, n * kv_dim, nullptr, true, &segs);
  hs.download_to(h.data());
  return h;
}

void layer_forward(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                   LinearInputHook* hook) {
  on_host_h(m, h, static_cast<int64_t>(n_seq) * seq_len, [&](float* hb) {
    prefill_layer(m, layer, hb, n_seq, seq_len, hook, /*with_ffn=*/true);
  });
}

void attention_block(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                     LinearInputHook* hook) {
  on_host_h(m, h, static_cast<int64_t>(n_seq) * seq_len, [&](float* hb) {
    prefill_layer(m, layer, hb, n_seq, seq_len, hook, /*with_ffn=*/false);
  });
}

void ffn_block(const LlamaModel& m, int layer, float* h, int64_t n_tokens, LinearInputHook* hook) {
  on_host_h(m, h, n_tokens, [&](float* hb) { ffn_block_resident(m, layer, hb, n_tokens, hook); });
}

void embed_tokens_resident(const LlamaModel& m, const int32_t* tokens, int64_t n, float* h) {
  check_tokens(m, tokens, n, "embed_tokens", "token");
  Staged<int32_t> ts(m.run_backend(), tokens, n, /*in=*/true);
  embed_rows(m, ts.get(), n, h);
}

void attention_block_resident(const LlamaModel& m, int layer, float* h, int n_seq, int seq_len,
                              LinearInputHook* hook) {
  prefill_layer(m, layer, h, n_seq, seq_len, hook, /*with_ffn=*/false);
}

void ffn_block_resident(const LlamaModel& m, int layer, float* h, int64_t n_tokens,
                        LinearInputHook* hook) {
  if (layer < 0 || layer >= static_cast<int>(m.layers.size()))
    fail("ffn_block", "layer " + std::to_string(layer) + " out of range");
  Scratch ws(m.run_backend());
  ffn_core(m, layer, h, n_tokens, hook, ws);
}

void output_logits(const LlamaModel& m, const float* h, int64_t n, float* logits) {
  const Backend& be = m.run_backend();
  Staged<float> hs(be, h, n * m.cfg.dim, /*in=*/true);
  Staged<float> ls(be, logits, n * m.cfg.vocab_size, /*in=*/false);
  logits_rows(m, hs.get(), n, ls.get());
  ls.download_to(logits);
}

std::vector<float> forward_logits(const LlamaModel& m, const int32_t* tokens, int n_seq,
                                  int seq_len) {
  const int64_t N = static_cast<int64_t>(n_seq) * seq_len;
  check_tokens(m, tokens, N, "embed_tokens", "token");
  const Backend& be = m.run_backend();
  std::vector<float> h_host(be.host_memory() ? N * m.cfg.dim : 0);
  Buffer<float> h_dev(be, be.host_memory() ? 0 : N * m.cfg.dim);
  float* h = be.host_memory() ? h_host.data() : h_dev.data();
  Staged<int32_t> ts(be, tokens, N, /*in=*/true);
  embed_rows(m, ts.get(), N, h);
  for (int l = 0; l < m.cfg.n_layers; ++l)
    prefill_layer(m, l, h, n_seq, seq_len, nullptr, /*with_ffn=*/true);
  std::vector<float> logits(N * m.cfg.vocab_size);
  Staged<float> ls(be, logits.data(), N * m.cfg.vocab_size, /*in=*/false);
  logits_rows(m, h, N, ls.get());
  ls.download_to(logits.data());
  return logits;
}

double sequences_nll(const LlamaModel& m, const int32_t* tokens, int n_seq, int seq_len,
                     int64_t* count, int first_target) {
  if (seq_len < 2 || first_target < 1 || first_target >= seq_len)
    fail("sequences_nll", "need seq_len >= 2 and 1 <= first_target < seq_len (got " +
                              std::to_string(seq_len) + ", " + std::to_string(first_target) + ")");
  const int T = seq_len - 1;  // inputs per sequence; row t predicts token t+1
  const int dim = m.cfg.dim, vocab = m.cfg.vocab_size;
  const Backend& be = m.run_backend();
  std::vector<int32_t> in(static_cast<size_t>(n_seq) * T);
  for (int s = 0; s < n_seq; ++s)
    std::copy_n(tokens + static_cast<int64_t>(s) * seq_len, T,
                in.data() + static_cast<size_t>(s) * T);
  check_tokens(m, in.data(), static_cast<int64_t>(in.size()), "embed_tokens", "token");
  // h: a host vector for host backends (as always), device memory otherwise.
  const int64_t n_in = static_cast<int64_t>(in.size());
  std::vector<float> h_host(be.host_memory() ? n_in * dim : 0);
  Buffer<float> h_dev(be, be.host_memory() ? 0 : n_in * dim);
  float* h = be.host_memory() ? h_host.data() : h_dev.data();
  {
    Staged<int32_t> ts(be, in.data(), n_in, /*in=*/true);
    embed_rows(m, ts.get(), n_in, h);
  }
  for (int l = 0; l < m.cfg.n_layers; ++l)
    prefill_layer(m, l, h, n_seq, T, nullptr, /*with_ffn=*/true);

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
  const int64_t nb_max = std::min(block, n_rows);
  Buffer<float> hb(be, nb_max * dim), logits(be, nb_max * vocab);
  Buffer<double> nll(be, nb_max);
  std::vector<double> nll_host(nb_max);
  double total = 0.0;
  for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
    const int64_t nb = std::min(block, n_rows - r0);
    // Gather the rows, one copy per run of consecutive rows.
    for (int64_t i = 0; i < nb;) {
      int64_t j = i + 1;
      while (j < nb && rows[r0 + j] == rows[r0 + j - 1] + 1) ++j;
      be.copy(hb.data() + i * dim, h + rows[r0 + i] * dim,
              static_cast<size_t>((j - i) * dim) * sizeof(float));
      i = j;
    }
    logits_rows(m, hb.data(), nb, logits.data());
    Staged<int32_t> tg(be, targets.data() + r0, nb, /*in=*/true);
    be.nll_rows(logits.data(), nb, vocab, tg.get(), nll.data());
    be.download(nll_host.data(), nll.data(), static_cast<size_t>(nb) * sizeof(double));
    for (int64_t i = 0; i < nb; ++i) total += nll_host[i];
  }
  if (count) *count = n_rows;
  return total;
}

Decoder::Decoder(const LlamaModel& m, int max_seq_len)
    : m_(m), backend_(m.backend), be_(&m.run_backend()), max_seq_len_(max_seq_len) {
  if (max_seq_len <= 0) fail("Decoder", "max_seq_len must be positive");
  const size_t kv_dim = static_cast<size_t>(m.cfg.n_kv_heads) * m.cfg.head_dim();
  const size_t n = static_cast<size_t>(m.cfg.n_layers) * max_seq_len * kv_dim;
  k_cache_ = Buffer<float>(*be_, n);
  v_cache_ = Buffer<float>(*be_, n);
  be_->zero(k_cache_.data(), n * sizeof(float));
  be_->zero(v_cache_.data(), n * sizeof(float));
  logits_.resize(m.cfg.vocab_size);
}

const std::vector<float>& Decoder::forward(const int32_t* tokens, int n, float* all_logits) {
  if (n <= 0) fail("Decoder", "forward needs at least one token");
  if (pos_ + n > max_seq_len_)
    fail("Decoder", "context full: " + std::to_string(pos_) + " + " + std::to_string(n) +
                        " tokens exceed max_seq_len " + std::to_string(max_seq_len_));
  if (&m_.run_backend() != be_)
    fail("Decoder",
         "the model's backend changed after the decoder was made (its KV cache is in "
         "the old backend's memory)");
  check_tokens(m_, tokens, n, "embed_tokens", "token");
  const Backend& be = *be_;
  const int dim = m_.cfg.dim, vocab = m_.cfg.vocab_size;
  const int64_t layer_size =
      static_cast<int64_t>(max_seq_len_) * m_.cfg.n_kv_heads * m_.cfg.head_dim();
  Scratch ws(be);
  float* h = ws.get(kG, static_cast<int64_t>(n) * dim);  // kG: layer_core leases its own
  {
    Staged<int32_t> ts(be, tokens, n, /*in=*/true);
    embed_rows(m_, ts.get(), n, h);
  }
  for (int l = 0; l < m_.cfg.n_layers; ++l)
    layer_core(m_, l, h, 1, n, pos_, k_cache_.data() + l * layer_size,
               v_cache_.data() + l * layer_size, layer_size, nullptr);
  pos_ += n;
  if (all_logits) {
    Staged<float> ls(be, all_logits, static_cast<int64_t>(n) * vocab, /*in=*/false);
    logits_rows(m_, h, n, ls.get());
    ls.download_to(all_logits);
    std::copy_n(all_logits + static_cast<int64_t>(n - 1) * vocab, vocab, logits_.data());
  } else {
    Staged<float> ls(be, logits_.data(), vocab, /*in=*/false);
    logits_rows(m_, h + static_cast<int64_t>(n - 1) * dim, 1, ls.get());
    ls.download_to(logits_.data());
  }
  return logits_;
}

void Decoder::truncate(int p) {
  if (p < 0 || p > pos_)
    fail("Decoder", "truncate(" + std::to_string(p) + ") outside 0.." + std::to_string(pos_));
  pos_ = p;
}

}  // namespace lrc
