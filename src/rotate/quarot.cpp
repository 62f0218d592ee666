// QuaRot model rotation (lrc/rotate/quarot.h): norm folding, residual rotation, and the
// rotations around o_proj and down_proj, fused into the weights in float64.
#include "lrc/rotate/quarot.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>
#include <utility>

#include "lrc/core/error.h"
#include "lrc/core/half.h"
#include "lrc/model/layer_linears.h"
#include "lrc/rotate/hadamard.h"
#include "rotate/hadamard_kernels.h"
#include "rotate/seeded_random.h"

namespace lrc {

namespace {

// A weight in float64 while rotations are multiplied into it; rounded to float32 once at the end.
// (Element-wise loops run on every core: at Llama-2-7B's shape a layer is 200M weights, and
// these copies and transposes were most of its rotation time.)
// Leaves new elements uninitialized, so that the parallel loops below are their first touch
// (a value-initializing vector would zero gigabytes on one thread first).
template <class T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0)
      ::new (static_cast<void*>(p)) U;
    else
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

struct Matrix64 {
  int rows = 0, cols = 0;
  std::vector<double, UninitAllocator<double>> a;  // row-major

  Matrix64(const std::vector<float>& w, int r, int c) : rows(r), cols(c), a(w.size()) {
    const int64_t n = static_cast<int64_t>(w.size());
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
    for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = w[static_cast<size_t>(i)];
  }
  void store(std::vector<float>& w) const {
    w.resize(a.size());
    const int64_t n = static_cast<int64_t>(a.size());
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
    for (int64_t i = 0; i < n; ++i)
      w[static_cast<size_t>(i)] = static_cast<float>(a[static_cast<size_t>(i)]);
  }
  void transpose() {
    std::vector<double, UninitAllocator<double>> t(a.size());
    constexpr int B = 32;  // blocked, so both sides stay in cache
#pragma omp parallel for schedule(static) if (a.size() >= kParallelElements)
    for (int i0 = 0; i0 < rows; i0 += B)
      for (int j0 = 0; j0 < cols; j0 += B)
        for (int i = i0; i < std::min(rows, i0 + B); ++i)
          for (int j = j0; j < std::min(cols, j0 + B); ++j)
            t[static_cast<size_t>(j) * rows + i] = a[static_cast<size_t>(i) * cols + j];
    a.swap(t);
    std::swap(rows, cols);
  }
  static constexpr int64_t kParallelElements = int64_t{1} << 18;
};

// W ← W·diag(g): scales column j by g[j].
void scale_columns(Matrix64& w, const std::vector<float>& g) {
#pragma omp parallel for schedule(static) if (w.a.size() >= Matrix64::kParallelElements)
  for (int i = 0; i < w.rows; ++i)
    for (int j = 0; j < w.cols; ++j) w.a[static_cast<size_t>(i) * w.cols + j] *= g[j];
}

// Every consecutive length-r.n segment x of every row becomes R·x. With r.n = cols this is
// W ← W·Rᵀ (the input side); with r.n < cols it is W ← W·(I ⊗ R)ᵀ (R on each head's slice).
void rotate_inputs(Matrix64& w, const Rotation& r) {
  if (w.cols % r.n != 0) fail("quarot", "rotation order does not divide the row length");
  r.apply(w.a.data(), static_cast<int64_t>(w.rows) * (w.cols / r.n));
}

// The output side: W ← R·W (or (I ⊗ R)·W on blocks of r.n rows), i.e. every column segment.
void rotate_outputs(Matrix64& w, const Rotation& r) {
  w.transpose();
  rotate_inputs(w, r);
  w.transpose();
}

// Rows seen as [r.n x block] matrices X become R·X: W ← W·(R ⊗ I_block)ᵀ.
void rotate_inputs_across_blocks(Matrix64& w, const Rotation& r, int block) {
  const std::vector<double> rd = r.dense();
  const int n = r.n * block;
#pragma omp parallel
  {
    std::vector<double> y(n);
#pragma omp for schedule(static)
    for (int i = 0; i < w.rows; ++i) {
      double* row = w.a.data() + static_cast<size_t>(i) * w.cols;
      detail::mix_leading_axis(rd.data(), r.n, row, block, y.data());
      std::copy(y.begin(), y.end(), row);
    }
  }
}

void check_float_model(const LlamaModel& m, const char* where) {
  validate_model(m, where);
  auto check = [&](const Linear& l, const std::string& name) {
    if (l.lr.rank > 0 || l.packed)
      fail(where, name + " is already quantized or has a low-rank branch; rotate the float model");
  };
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const auto& L = m.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    for (const auto& t : layer_linears(m.cfg)) check(t.of(L), p + t.name);
  }
  check(m.lm_head, "lm_head");
}

void fill_ones(std::vector<float>& v) { std::fill(v.begin(), v.end(), 1.f); }

// The spec of one rotation: Hadamard where the order has one (and the options allow it),
// random orthogonal otherwise. The spec is what is recorded; the matrix is recomputed from it.
OnlineSpec spec_for(int n, int block, uint64_t seed, bool hadamard) {
  OnlineSpec s;
  s.kind = hadamard && has_hadamard(n) ? RotationKind::Hadamard : RotationKind::Orthogonal;
  s.n = n;
  s.block = block;
  s.seed = seed;
  return s;
}

}  // namespace

void fold_norms(LlamaModel& m) {
  check_float_model(m, "fold_norms");
  const auto fold = [](Linear& l, const std::vector<float>& g) {
    Matrix64 w(l.w, l.d_out, l.d_in);
    scale_columns(w, g);
    w.store(l.w);
  };
  for (auto& L : m.layers) {
    for (const auto& t : layer_linears(m.cfg)) {  // q/k/v (or qkv) and gate/up (or gate_up)
      if (t.group == 0) fold(t.of(L), L.attn_norm);
      if (t.group == 2) fold(t.of(L), L.ffn_norm);
    }
    if (m.cfg.moe()) fold(L.router, L.ffn_norm);  // the router reads the same normed input
    fill_ones(L.attn_norm);
    fill_ones(L.ffn_norm);
  }
  fold(m.lm_head, m.final_norm);
  fill_ones(m.final_norm);
  m.cfg.tied_embeddings = false;
}

QuarotPlan plan_rotation(const LlamaConfig& c, const RotationOptions& opt) {
  const int hd = c.head_dim();
  QuarotPlan p;
  p.head_dim = hd;
  p.q_dim = c.q_dim();
  p.kv_dim = c.kv_dim();
  RotationInfo& info = p.info;
  info.seed = opt.seed;
  // One independent seed per rotation, derived from the master seed and a fixed tag.
  auto seed = [&](uint64_t tag) { return detail::derive_seed(opt.seed, tag); };
  if (opt.rotate_residual) info.residual = spec_for(c.dim, 1, seed(1), opt.hadamard);
  if (opt.online_down) info.online_down = spec_for(c.hidden_dim, 1, seed(2), opt.hadamard);
  if (opt.rotate_attn_out) {
    info.value_heads = spec_for(hd, 1, seed(3), opt.hadamard);
    info.online_o = spec_for(c.n_heads, hd, seed(4), opt.hadamard);
  }
  if (opt.online_qk) info.online_qk = spec_for(hd, 1, seed(5), opt.hadamard);
  info.norms_folded = true;

  auto rotation = [](const std::optional<OnlineSpec>& s) {
    return s ? std::optional<Rotation>(make_rotation(s->kind, s->n, s->seed)) : std::nullopt;
  };
  p.r_res = rotation(info.residual);
  p.r_down = rotation(info.online_down);
  p.r_vh = rotation(info.value_heads);
  p.r_heads = rotation(info.online_o);
  return p;
}

namespace {
// (a) + (b) for a linear that reads the residual stream through a norm with weight g.
Matrix64 reads_residual(const Linear& l, const std::vector<float>& g, const QuarotPlan& p) {
  Matrix64 w(l.w, l.d_out, l.d_in);
  scale_columns(w, g);
  if (p.r_res) rotate_inputs(w, *p.r_res);
  return w;
}
}  // namespace

void rotate_ends(LlamaModel& m, const QuarotPlan& p) {
  const LlamaConfig& c = m.cfg;
  {  // embeddings: each row e ↦ R·e
    Matrix64 e(m.tok_embeddings, c.vocab_size, c.dim);
    if (p.r_res) rotate_inputs(e, *p.r_res);
    e.store(m.tok_embeddings);
  }
  reads_residual(m.lm_head, m.final_norm, p).store(m.lm_head.w);
  fill_ones(m.final_norm);
  m.cfg.tied_embeddings = false;
  attach_online_transforms(m, p.info);
}

namespace {
// (d) on v's output: R_hd on each kv head's rows of W_v [kv_dim x d_in] held in rows
// row0 .. row0 + kv_dim − 1 of w, and on its bias b_v (v = W_v x + b_v becomes (I ⊗ R_hd)·v).
void rotate_value_heads(Matrix64& w, int row0, int kv_dim, std::vector<float>& bias,
                        const Rotation& r) {
  if (row0 == 0 && kv_dim == w.rows) {
    rotate_outputs(w, r);
  } else {
    const auto first = w.a.begin() + static_cast<int64_t>(row0) * w.cols;
    Matrix64 v({}, 0, 0);
    v.rows = kv_dim;
    v.cols = w.cols;
    v.a.assign(first, first + static_cast<int64_t>(kv_dim) * w.cols);
    rotate_outputs(v, r);
    std::copy(v.a.begin(), v.a.end(), first);
  }
  if (!bias.empty()) {  // a bias is one more column of W_v
    Matrix64 b(bias, kv_dim, 1);
    rotate_outputs(b, r);
    b.store(bias);
  }
}
}  // namespace

namespace {
// --smooth on the linears reading one norm (already folded and rotated, in float64): the norm
// weight becomes ν = fp16(1/s), s_j = amax_j^α / wmax_j^(1−α), and every reader W ← W·diag(1/ν)
// with that rounded ν, so W·(ν ⊙ R·x̂) is what it was. Returns ν.
std::vector<float> smooth_readers(const std::vector<Matrix64*>& ws, const std::vector<double>& amax,
                                  double alpha) {
  const int d = ws[0]->cols;
  if (static_cast<int>(amax.size()) != d) fail("smooth", "activation maxima do not match the norm");
  std::vector<double> wmax(d, 0.0);
  for (const Matrix64* w : ws)
    for (int i = 0; i < w->rows; ++i)
      for (int j = 0; j < d; ++j)
        wmax[j] = std::max(wmax[j], std::abs(w->a[static_cast<size_t>(i) * d + j]));
  std::vector<float> nu(d, 1.f);
  std::vector<double> inv(d, 1.0);
  for (int j = 0; j < d; ++j) {
    if (!(amax[j] > 0) || !(wmax[j] > 0)) continue;  // a dead channel keeps weight 1
    // Bounded so that ν stays a normal fp16 number.
    const double s = std::clamp(std::pow(amax[j], alpha) / std::pow(wmax[j], 1 - alpha), 1e-3, 1e3);
    nu[j] = f16_to_f32(f32_to_f16(static_cast<float>(1.0 / s)));
    inv[j] = 1.0 / static_cast<double>(nu[j]);
  }
  for (Matrix64* w : ws)
    for (int i = 0; i < w->rows; ++i)
      for (int j = 0; j < d; ++j) w->a[static_cast<size_t>(i) * d + j] *= inv[j];
  return nu;
}
}  // namespace

void rotate_layer(LlamaLayer& L, const QuarotPlan& p, int layer) {
  const bool smooth = layer >= 0 && p.smooth_alpha > 0 &&
                      layer < static_cast<int>(p.smooth_attn_max.size());
  std::vector<float> attn_norm(L.attn_norm.size(), 1.f), ffn_norm(L.ffn_norm.size(), 1.f);
  // A bias is unchanged by (a) and (b): they rotate the input side only.
  if (!L.wqkv.w.empty()) {  // phi3's fused q/k/v: v is the last kv_dim rows
    Matrix64 w = reads_residual(L.wqkv, L.attn_norm, p);
    if (smooth) attn_norm = smooth_readers({&w}, p.smooth_attn_max[layer], p.smooth_alpha);
    if (p.r_vh) rotate_value_heads(w, p.q_dim + p.kv_dim, p.kv_dim, L.wqkv.bias, *p.r_vh);
    w.store(L.wqkv.w);
  } else {
    Matrix64 wq = reads_residual(L.wq, L.attn_norm, p);
    Matrix64 wk = reads_residual(L.wk, L.attn_norm, p);
    Matrix64 wv = reads_residual(L.wv, L.attn_norm, p);
    if (smooth) attn_norm = smooth_readers({&wq, &wk, &wv}, p.smooth_attn_max[layer], p.smooth_alpha);
    if (p.r_vh) rotate_value_heads(wv, 0, L.wv.d_out, L.wv.bias, *p.r_vh);
    wq.store(L.wq.w);
    wk.store(L.wk.w);
    wv.store(L.wv.w);
  }

  Matrix64 wo(L.wo.w, L.wo.d_out, L.wo.d_in);
  if (p.r_vh) {  // (d) o_proj's input is (R_h ⊗ R_hd)·x
    rotate_inputs(wo, *p.r_vh);
    rotate_inputs_across_blocks(wo, *p.r_heads, p.head_dim);
  }
  if (p.r_res) rotate_outputs(wo, *p.r_res);  // writes the residual stream
  wo.store(L.wo.w);

  // (c) on a down_proj: its input is H_down·g, and it writes the residual stream.
  const auto rotate_down = [&](Linear& d) {
    Matrix64 wd(d.w, d.d_out, d.d_in);
    if (p.r_down) rotate_inputs(wd, *p.r_down);
    if (p.r_res) rotate_outputs(wd, *p.r_res);
    wd.store(d.w);
  };
  if (!L.experts.empty()) {  // MoE: the router and every expert read the same rotated input
    // (--smooth leaves the feed-forward norm of an MoE layer at 1: its readers are 1 + 2·E
    // matrices, too many to hold in float64 at once for the shared scales.)
    reads_residual(L.router, L.ffn_norm, p).store(L.router.w);
    for (MoeExpert& e : L.experts) {
      reads_residual(e.w_gate, L.ffn_norm, p).store(e.w_gate.w);
      reads_residual(e.w_up, L.ffn_norm, p).store(e.w_up.w);
      rotate_down(e.w_down);
    }
  } else {
    if (!L.w_gate_up.w.empty()) {
      Matrix64 w = reads_residual(L.w_gate_up, L.ffn_norm, p);
      if (smooth) ffn_norm = smooth_readers({&w}, p.smooth_ffn_max[layer], p.smooth_alpha);
      w.store(L.w_gate_up.w);
    } else {
      Matrix64 wg = reads_residual(L.w_gate, L.ffn_norm, p);
      Matrix64 wu = reads_residual(L.w_up, L.ffn_norm, p);
      if (smooth) ffn_norm = smooth_readers({&wg, &wu}, p.smooth_ffn_max[layer], p.smooth_alpha);
      wg.store(L.w_gate.w);
      wu.store(L.w_up.w);
    }
    rotate_down(L.w_down);
  }

  L.attn_norm = std::move(attn_norm);
  L.ffn_norm = std::move(ffn_norm);
}

RotationInfo rotate_model_with_plan(LlamaModel& m, const QuarotPlan& p) {
  check_float_model(m, "rotate_model");
  if (m.online_o || m.online_down || m.online_qk)
    fail("rotate_model", "the model already has online rotations");
  for (size_t i = 0; i < m.layers.size(); ++i)
    if (!m.layer_source || m.layer_resident(static_cast<int>(i)))
      rotate_layer(m.layers[i], p, static_cast<int>(i));
  rotate_ends(m, p);
  return p.info;
}

RotationInfo rotate_model(LlamaModel& m, const RotationOptions& opt) {
  return rotate_model_with_plan(m, plan_rotation(m.cfg, opt));
}

}  // namespace lrc
