// Calibrated residual rotation and smoothing (lrc/rotate/residual_calibration.h): the samples
// x̂ of the FP model, the objective and its gradient, the Cayley search, and the plan update.
#include "lrc/rotate/residual_calibration.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "lrc/core/error.h"
#include "lrc/model/forward.h"
#include "rotate/seeded_random.h"

namespace lrc {

const char* rotation_objective_name(RotationObjective o) {
  return o == RotationObjective::Quant ? "quant" : "kurtosis";
}

RotationObjective parse_rotation_objective(const std::string& s) {
  if (s == "quant") return RotationObjective::Quant;
  if (s == "kurtosis") return RotationObjective::Kurtosis;
  fail("--rotation-objective", "expected quant or kurtosis, got '" + s + "'");
}

namespace {

// Takes the sampled rows of every q/k/v and gate/up input (x̂: the copy's norms are folded).
class SampleHook final : public LinearInputHook {
 public:
  SampleHook(ResidualSamples& s, const std::vector<int64_t>& pos) : s_(s), pos_(pos) {}
  void on_input(int layer, LinearGroup g, const float* x, int64_t n, int d) override {
    if (g != LinearGroup::QKV && g != LinearGroup::GateUp) return;
    if (d != s_.dim) fail("rotation", "a norm's output is not of the model's dimension");
    const int point = 2 * layer + (g == LinearGroup::GateUp ? 1 : 0);
    for (size_t r = 0; r < pos_.size(); ++r) {
      if (pos_[r] >= n) fail("rotation", "sampled token outside the forward batch");
      const float* src = x + pos_[r] * d;
      double* dst = s_.x.data() + (static_cast<size_t>(point) * s_.rows_per_point + r) * d;
      std::copy(src, src + d, dst);
    }
  }

 private:
  ResidualSamples& s_;
  const std::vector<int64_t>& pos_;
};

// φ of one row y [n] and, with grad, ∂φ/∂y written over y.
double quant_row(double* y, int n, double qmax, double clip, bool grad) {
  double s2 = 0, amax = 0;
  int im = 0;
  for (int i = 0; i < n; ++i) {
    s2 += y[i] * y[i];
    if (std::abs(y[i]) > amax) {
      amax = std::abs(y[i]);
      im = i;
    }
  }
  if (!(s2 > 0)) {
    if (grad) std::fill(y, y + n, 0.0);
    return 0;
  }
  const double s = clip * amax / qmax;
  double err = 0, gs = 0;  // Σe², ∂Σe²/∂s (straight through the rounding)
  auto code = [&](double v, bool& clamped) {
    const double q = std::nearbyint(v / s);
    clamped = q < -qmax - 1 || q > qmax;
    return std::clamp(q, -qmax - 1, qmax);
  };
  for (int i = 0; i < n; ++i) {
    bool clamped;
    const double q = code(y[i], clamped);
    const double e = y[i] - s * q;
    err += e * e;
    gs += clamped ? -2 * e * q : 2 * e * e / s;
  }
  const double phi = err / s2;
  if (grad) {
    const double sign_m = y[im] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < n; ++i) {
      bool clamped;
      const double q = code(y[i], clamped);
      const double e = y[i] - s * q;
      // A clamped code is fixed: e moves with y. Rounded ones move with the scale only.
      const double direct = clamped ? 2 * e : 0.0;
      y[i] = direct / s2 - phi * 2 * y[i] / s2;
    }
    y[im] += gs * (clip / qmax) * sign_m / s2;
  }
  return phi;
}

double kurtosis_row(double* y, int n, bool grad) {
  double s2 = 0, s4 = 0;
  for (int i = 0; i < n; ++i) {
    const double v2 = y[i] * y[i];
    s2 += v2;
    s4 += v2 * v2;
  }
  if (!(s2 > 0)) {
    if (grad) std::fill(y, y + n, 0.0);
    return 0;
  }
  const double phi = n * s4 / (s2 * s2);
  if (grad)
    for (int i = 0; i < n; ++i)
      y[i] = 4.0 * n * (y[i] * y[i] * y[i] / (s2 * s2) - s4 * y[i] / (s2 * s2 * s2));
  return phi;
}

double frobenius(const std::vector<double>& a) {
  double s = 0;
  for (double v : a) s += v * v;
  return std::sqrt(s);
}

// c [n x n] = a·bᵀ (tb) or a·b.
void matmul(const double* a, const double* b, double* c, int n, bool tb) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, n, n, n, 1.0, a, n, b,
              n, 0.0, c, n);
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

ResidualSamples collect_residual_samples(const LlamaModel& m, const int32_t* tokens, int n_seq,
                                         int seq_len, int rows_per_point, uint64_t seed) {
  const LlamaConfig& c = m.cfg;
  const int64_t n_tok = static_cast<int64_t>(n_seq) * seq_len;
  if (n_tok <= 0 || rows_per_point < 1)
    fail("rotation", "no calibration tokens to calibrate the rotation on");
  if (m.online_o || m.online_down || m.online_qk)
    fail("rotation", "calibrating the rotation needs the FP model before rotation");
  // The same seeded token positions at every point (partial Fisher–Yates), in order.
  std::vector<int64_t> pos(static_cast<size_t>(n_tok));
  std::iota(pos.begin(), pos.end(), int64_t{0});
  const int64_t k = std::min<int64_t>(rows_per_point, n_tok);
  detail::SplitMix64 rng(seed);
  for (int64_t i = 0; i < k; ++i)
    std::swap(pos[i], pos[i + static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n_tok - i))]);
  pos.resize(static_cast<size_t>(k));
  std::sort(pos.begin(), pos.end());

  ResidualSamples s;
  s.dim = c.dim;
  s.points = 2 * c.n_layers;
  s.rows_per_point = static_cast<int>(k);
  s.x.assign(static_cast<size_t>(s.rows()) * s.dim, 0.0);
  // A copy whose layers get their norms folded (a plan with no rotation): its q/k/v and gate/up
  // inputs are then x̂ itself. A streamed model's copy loads one layer at a time.
  LlamaModel fp = m;
  RotationOptions none;
  none.rotate_residual = none.online_down = none.rotate_attn_out = none.online_qk = false;
  const QuarotPlan fold = plan_rotation(c, none);
  SampleHook hook(s, pos);
  std::vector<float> h(static_cast<size_t>(n_tok) * c.dim);
  embed_tokens(fp, tokens, n_tok, h.data());
  for (int l = 0; l < c.n_layers; ++l) {
    if (fp.layer_source) fp.load_layer(l);
    rotate_layer(fp.layers[static_cast<size_t>(l)], fold);
    layer_forward(fp, l, h.data(), n_seq, seq_len, &hook);
    if (fp.layer_source) fp.release_layer(l);
  }
  for (double v : s.x)
    if (!std::isfinite(v)) fail("rotation", "non-finite activation in the FP model's residual");
  return s;
}

double rotation_objective(const double* x, int64_t rows, int n, const std::vector<double>& r,
                          const RotationSearchOptions& o, std::vector<double>* grad) {
  if (rows <= 0) fail("rotation", "no samples for the rotation objective");
  if (r.size() != static_cast<size_t>(n) * n) fail("rotation", "rotation is not n x n");
  std::vector<double> y(static_cast<size_t>(rows) * n);
  // y = x·Rᵀ: each row becomes R·x.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), n, n, 1.0, x, n,
              r.data(), n, 0.0, y.data(), n);
  const double qmax = static_cast<double>((1 << (o.bits - 1)) - 1);
  std::vector<double> phi(static_cast<size_t>(rows));
  const bool g = grad != nullptr;
#pragma omp parallel for schedule(static) if (rows > 256)
  for (int64_t t = 0; t < rows; ++t) {
    double* yr = y.data() + t * n;
    phi[static_cast<size_t>(t)] = o.objective == RotationObjective::Quant
                                      ? quant_row(yr, n, qmax, o.clip, g)
                                      : kurtosis_row(yr, n, g);
  }
  double total = 0;  // summed in row order: the same value whatever the thread count
  for (double v : phi) total += v;
  if (g) {
    // ∂F/∂R_ij = (1/rows)·Σ_t ∂φ/∂y_ti · x_tj: G = Dᵀ·X / rows.
    grad->assign(static_cast<size_t>(n) * n, 0.0);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, static_cast<int>(rows),
                1.0 / static_cast<double>(rows), y.data(), n, x, n, 0.0, grad->data(), n);
  }
  return total / static_cast<double>(rows);
}

RotationSearchResult search_rotation(const double* x, int64_t rows, int n, std::vector<double> r0,
                                     const RotationSearchOptions& o) {
  if (o.steps < 0) fail("--rotation-steps", "must be >= 0");
  const size_t nn = static_cast<size_t>(n) * n;
  RotationSearchResult res;
  res.r = std::move(r0);
  std::vector<double> g, gn, b(nn), a(nn), lhs(nn), rhs(nn), rn(nn);
  std::vector<lapack_int> ipiv(static_cast<size_t>(n));
  double f = rotation_objective(x, rows, n, res.r, o, &g);
  res.history.push_back(f);
  double eta = 0.05;  // τ·‖A‖_F: how far one step turns R
  for (int it = 0; it < o.steps; ++it) {
    // The Riemannian direction: A = G·Rᵀ − R·Gᵀ = B − Bᵀ (skew).
    matmul(g.data(), res.r.data(), b.data(), n, /*tb=*/true);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        a[static_cast<size_t>(i) * n + j] =
            b[static_cast<size_t>(i) * n + j] - b[static_cast<size_t>(j) * n + i];
    const double norm_a = frobenius(a);
    ++res.steps_taken;
    if (!(norm_a > 0)) break;
    bool moved = false;
    for (int tries = 0; tries < 12 && !moved; ++tries) {
      const double half_tau = 0.5 * eta / norm_a;
      // (I + τ/2·A)·R_new = (I − τ/2·A)·R: the Cayley transform of −τA times R.
      for (size_t i = 0; i < nn; ++i) {
        lhs[i] = half_tau * a[i];
        b[i] = -half_tau * a[i];
      }
      for (int i = 0; i < n; ++i) {
        lhs[static_cast<size_t>(i) * n + i] += 1.0;
        b[static_cast<size_t>(i) * n + i] += 1.0;
      }
      matmul(b.data(), res.r.data(), rhs.data(), n, /*tb=*/false);
      if (LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, n, lhs.data(), n, ipiv.data(), rhs.data(), n) != 0)
        fail("rotation", "Cayley step: singular system");
      rn = rhs;
      const double fn = rotation_objective(x, rows, n, rn, o, &gn);
      if (fn < f) {
        res.r.swap(rn);
        g.swap(gn);
        f = fn;
        moved = true;
        eta = std::min(eta * 1.5, 1.0);
      } else {
        eta *= 0.5;
      }
    }
    res.history.push_back(f);
    if (!moved) break;  // no step length lowers F: a (local) minimum on this sample
  }
  // One Newton–Schulz step towards the nearest orthogonal matrix, R ← R·(3I − RᵀR)/2: the
  // steps' rounding (about 1e-15 each) is squared away.
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, res.r.data(), n,
              res.r.data(), n, 0.0, b.data(), n);
  for (size_t i = 0; i < nn; ++i) b[i] = -0.5 * b[i];
  for (int i = 0; i < n; ++i) b[static_cast<size_t>(i) * n + i] += 1.5;
  matmul(res.r.data(), b.data(), rn.data(), n, /*tb=*/false);
  res.r.swap(rn);
  return res;
}

void calibrate_plan(QuarotPlan& p, const LlamaModel& m, const int32_t* tokens, int n_seq,
                    int seq_len, const ResidualCalibrationOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const LlamaConfig& c = m.cfg;
  const int n = c.dim;
  if (o.rotate && !p.r_res)
    fail("--rotation", "calibrated needs the residual rotation (it starts from the Hadamard)");
  if (o.smooth_alpha < 0 || o.smooth_alpha > 1)
    fail("--smooth", "alpha must be in [0, 1], got " + std::to_string(o.smooth_alpha));
  if (o.rows < 2) fail("--rotation-rows", "must be at least 2");
  const int ns = std::min(n_seq, o.n_seq);
  const int points = 2 * c.n_layers;
  // Twice the rows asked for: every other sampled row is held out, to see the search generalise.
  const int per_point = std::max(2, 2 * (o.rows / std::max(1, points)));
  const ResidualSamples s = collect_residual_samples(m, tokens, ns, seq_len, per_point,
                                                     detail::derive_seed(o.seed, 31));
  std::vector<double> train, held;
  train.reserve(s.x.size() / 2 + n);
  held.reserve(s.x.size() / 2 + n);
  for (int64_t r = 0; r < s.rows(); ++r) {
    const double* row = s.x.data() + r * n;
    std::vector<double>& to = (r % s.rows_per_point) % 2 == 0 ? train : held;
    to.insert(to.end(), row, row + n);
  }
  const int64_t n_train = static_cast<int64_t>(train.size()) / n;
  const int64_t n_held = static_cast<int64_t>(held.size()) / n;

  ResidualCalibrationInfo info;
  info.rows = n_train;
  std::vector<double> r;
  if (p.r_res) {
    r = p.r_res->dense();
  } else {
    r.assign(static_cast<size_t>(n) * n, 0.0);
    for (int i = 0; i < n; ++i) r[static_cast<size_t>(i) * n + i] = 1.0;
  }
  if (o.rotate) {
    std::fprintf(stderr, "[rotation] calibrating R (%d x %d) on %lld samples x̂ (%s, %d steps)\n",
                 n, n, static_cast<long long>(n_train), rotation_objective_name(o.search.objective),
                 o.search.steps);
    info.objective = rotation_objective_name(o.search.objective);
    info.held_out_before = n_held > 0 ? rotation_objective(held.data(), n_held, n, r, o.search) : 0;
    RotationSearchResult res = search_rotation(train.data(), n_train, n, r, o.search);
    info.before = res.history.front();
    info.after = res.history.back();
    info.steps = res.steps_taken;
    r = std::move(res.r);
    info.held_out_after = n_held > 0 ? rotation_objective(held.data(), n_held, n, r, o.search) : 0;
    Rotation cal;
    cal.kind = RotationKind::Orthogonal;
    cal.n = n;
    cal.seed = p.r_res->seed;
    cal.q = r;
    p.r_res = std::move(cal);
    std::fprintf(stderr,
                 "[rotation] %s objective %.6g -> %.6g (held-out %.6g -> %.6g), %d steps, %.1fs\n",
                 info.objective.c_str(), info.before, info.after, info.held_out_before,
                 info.held_out_after, info.steps, since(t0));
  }
  if (o.smooth_alpha > 0) {
    // max |(R·x̂)_j| per point over all its samples (the rotation as it will be fused).
    std::vector<double> y(s.x.size());
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(s.rows()), n, n, 1.0,
                s.x.data(), n, r.data(), n, 0.0, y.data(), n);
    p.smooth_alpha = o.smooth_alpha;
    p.smooth_attn_max.assign(static_cast<size_t>(c.n_layers), std::vector<double>(n, 0.0));
    p.smooth_ffn_max = p.smooth_attn_max;
    for (int pt = 0; pt < points; ++pt) {
      std::vector<double>& mx = (pt % 2 == 0 ? p.smooth_attn_max : p.smooth_ffn_max)[pt / 2];
      for (int rr = 0; rr < s.rows_per_point; ++rr) {
        const double* row = y.data() + (static_cast<size_t>(pt) * s.rows_per_point + rr) * n;
        for (int j = 0; j < n; ++j) mx[j] = std::max(mx[j], std::abs(row[j]));
      }
    }
    info.smooth_alpha = o.smooth_alpha;
  }
  info.seconds = since(t0);
  p.info.calibrated = info;
}

}  // namespace lrc
