#include "lrc/quant/lrc_solver.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/rank.h"
#include "quant/finite_check.h"
#include "quant/spd_solve.h"
#include "quant/top_singular.h"

namespace lrc {

using quant_detail::cholesky_lower;
using quant_detail::cholesky_solve;
using quant_detail::top_left_singular;

namespace {

size_t sz(int a, int b) { return static_cast<size_t>(a) * static_cast<size_t>(b); }

std::vector<double> to_double(const float* p, size_t n) { return std::vector<double>(p, p + n); }

// Σx = XXᵀ + εx I, Σy = YYᵀ + εy I, Σxy = XYᵀ + exy I as the statistics plus their ridges,
// without d² copies: at d_in = 14336 each copy is 1.6 GB, and the solver's steps copy what
// they factor anyway (adding the ridge as they copy: the same values, bit for bit, as copies
// of regularized_covariances' matrices).
struct Ridged {
  int d = 0;
  const double *xx = nullptr, *yy = nullptr, *xy = nullptr;
  double ex = 0, ey = 0, exy = 0;

  // regularized_covariances' matrices, already ridged.
  static Ridged of(const LrcCovariances& c) {
    return {c.d, c.sx.data(), c.sy.data(), c.sxy.data(), 0.0, 0.0, 0.0};
  }
  static std::vector<double> plus_diag(const double* m, int d, double e) {
    std::vector<double> out(m, m + sz(d, d));
    if (e != 0.0)
      for (int i = 0; i < d; ++i) out[sz(i, d) + i] += e;
    return out;
  }
  std::vector<double> sx() const { return plus_diag(xx, d, ex); }
  std::vector<double> sxy() const { return plus_diag(xy, d, exy); }
  // Σyx = Σxyᵀ.
  std::vector<double> syx() const {
    std::vector<double> t = sxy();
    quant_detail::transpose_square(t.data(), d);
    return t;
  }
  double sx_max_diag() const {
    double m = 0;
    for (int i = 0; i < d; ++i) m = std::max(m, xx[sz(i, d) + i] + ex);
    return m;
  }
};

// W̃ = A Σxy Σy⁻¹ [d_out x d] through Cholesky solves with Σy = L Lᵀ. The association is picked
// by cost: forming C = Σy⁻¹ Σyx (2d³) pays off when d_out >= d, since then W̃ = A Cᵀ is one
// dgemm; otherwise the d_out right-hand sides Σyx Aᵀ are solved directly.
std::vector<double> times_sxy_solve_sy(const double* A, int d_out, int d,
                                       const std::vector<double>& L, const Ridged& rs) {
  std::vector<double> out(sz(d_out, d), 0.0);
  std::vector<double> syx = rs.syx();
  if (d_out >= d) {
    std::vector<double> C = std::move(syx);  // C = Σy⁻¹ Σyx
    cholesky_solve(L.data(), d, C.data(), d);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d_out, d, d, 1.0, A, d, C.data(), d, 0.0,
                out.data(), d);
  } else {
    std::vector<double> T(sz(d, d_out));  // T = Σyx Aᵀ, then Σy⁻¹ T = W̃ᵀ
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d_out, d, 1.0, syx.data(), d, A, d, 0.0,
                T.data(), d_out);
    syx = {};
    cholesky_solve(L.data(), d, T.data(), d_out);
    for (int r = 0; r < d_out; ++r)
      for (int j = 0; j < d; ++j) out[sz(r, d) + j] = T[sz(j, d_out) + r];
  }
  return out;
}

// U from the top-k left singular vectors of F [d_out x m] (Σ = F Fᵀ) and Σ's eigenvalues.
LowRankFactors top_factors(const double* F, int d_out, int m, int k) {
  LowRankFactors lr;
  lr.rank = k;
  quant_detail::TopEigen te = top_left_singular(F, d_out, m, k);
  lr.u = std::move(te.u);
  lr.eigenvalues = std::move(te.lambda);
  return lr;
}

}  // namespace

double ridge_epsilon(const std::vector<double>& gram, int d, double eps_rel) {
  double tr = 0;
  for (int i = 0; i < d; ++i) tr += gram[sz(i, d) + i];
  return eps_rel * (tr > 0 ? tr : d) / d;
}

double ridge_epsilon_from_diagonal(const std::vector<double>& diag, double eps_rel) {
  const int d = static_cast<int>(diag.size());
  double tr = 0;
  for (int i = 0; i < d; ++i) tr += diag[static_cast<size_t>(i)];
  return eps_rel * (tr > 0 ? tr : d) / d;
}

namespace {

// Alg. 1 lines 3-5 as ridges on the statistics (no copies).
Ridged ridged_stats(const LayerStats& stats, LrcRegularization reg, double eps_rel) {
  const char* where = "regularized_covariances";
  if (!std::isfinite(eps_rel) || eps_rel < 0)
    fail(where, "eps_rel must be finite and >= 0, got " + std::to_string(eps_rel));
  const int d = stats.d;
  if (d <= 0) fail(where, "LayerStats.d must be positive, got " + std::to_string(d));
  check_layer_stats(stats, d, where);
  Ridged r;
  r.d = d;
  r.xx = stats.xx.data();
  r.yy = stats.yy.data();
  r.xy = stats.xy.data();
  r.ex = ridge_epsilon(stats.xx, d, eps_rel);
  r.ey = ridge_epsilon(stats.yy, d, eps_rel);
  // Consistent: X̄Ȳᵀ of X̄ = [X, √εx I], Ȳ = [Y, √εy I]
  r.exy = reg == LrcRegularization::Consistent ? std::sqrt(r.ex * r.ey) : 0.0;
  return r;
}

}  // namespace

LrcCovariances regularized_covariances(const LayerStats& stats, LrcRegularization reg,
                                       double eps_rel) {
  const Ridged r = ridged_stats(stats, reg, eps_rel);
  LrcCovariances c;
  c.d = r.d;
  c.eps_x = r.ex;
  c.eps_y = r.ey;
  c.sx = r.sx();
  c.sy = Ridged::plus_diag(r.yy, r.d, r.ey);
  c.sxy = r.sxy();
  return c;
}

namespace {

// M = Σx - Σxy Σy⁻¹ Σyx (Prop. 3.4's Σinit = W M Wᵀ) as a pivoted Cholesky factor,
// Pᵀ M P = RᵀR with R [r x d]: S = L_y⁻¹ Σyx (Alg. 4 line 4, with Wᵀ factored out), M = Σx - SᵀS.
// M is PSD (a Schur complement of the joint Gram) but may be singular (Consistent with Y = X
// gives M = 0), so the factorisation stops at its numerical rank r; the tolerance is relative
// to Σx, the scale the cancellation in M happens at.
//
// sx_when_zero (Init-LR only): when M is zero to rounding, as it is without activation
// quantization (Y = X and the consistent ridge), every U solves eq. 7 and Alg. 4 has no
// direction to offer; factor Σx instead, so U = eig_k(W Σx Wᵀ), V = WᵀU: the best rank-k
// approximation of W in the data's metric, leaving the quantizer the rest (measured on the
// 22M model, W4A16 LRC 10%: eq. 2 17% below starting from U = 0 or from a noise direction).
struct SchurFactor {
  int d = 0, r = 0;
  std::vector<lapack_int> piv;  // 1-based
  std::vector<double> R;        // r x d, upper triangular in its first r columns

  // Peak memory: three d² arrays besides the statistics (L_y and S, then S and M). LAPACK's
  // pivoted Cholesky runs column-major in place on the symmetric M (LAPACKE's row-major call
  // would transpose a fourth copy) and gives bit for bit the row-major call's factor, transposed.
  SchurFactor(const Ridged& rs, const char* where, bool sx_when_zero = false)
      : d(rs.d), piv(rs.d) {
    std::vector<double> S;
    {
      const std::vector<double> Ly = cholesky_lower(rs.yy, d, where, "Σy = YYᵀ + εy I", rs.ey);
      S = rs.syx();
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, d, d, 1.0,
                  Ly.data(), d, S.data(), d);
    }
    std::vector<double> M = rs.sx();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, d, -1.0, S.data(), d, 1.0, M.data(), d);
    S = {};
    const double max_diag = rs.sx_max_diag();
    const double tol = d * DBL_EPSILON * max_diag;
    lapack_int rank = 0;
    auto pivoted_cholesky = [&] {
      quant_detail::mirror_upper_to_lower(M.data(), d);
      const lapack_int info =
          LAPACKE_dpstrf(LAPACK_COL_MAJOR, 'U', d, M.data(), d, piv.data(), &rank, tol);
      if (info < 0) fail(where, "dpstrf argument " + std::to_string(-info));
      quant_detail::transpose_square(M.data(), d);  // R in the row-major upper triangle
    };
    pivoted_cholesky();
    r = static_cast<int>(rank);
    // dpstrf tests the tolerance from its second pivot on: a first pivot below it (M = 0 up
    // to rounding, as with Y = X) is noise, not a direction (the GPU's eigenvalue cut agrees).
    if (r > 0 && M[0] * M[0] <= tol) r = 0;
    if (r == 0 && sx_when_zero) {
      M = rs.sx();
      rank = 0;
      pivoted_cholesky();
      r = static_cast<int>(rank);
    }
    if (r == d) {  // the usual case: R is M's upper triangle, in place
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < i; ++j) M[sz(i, d) + j] = 0.0;
      R = std::move(M);
      return;
    }
    R.assign(sz(r, d), 0.0);
    for (int i = 0; i < r; ++i)
      for (int j = i; j < d; ++j) R[sz(i, d) + j] = M[sz(i, d) + j];
  }

  // F = W P Rᵀ [d_out x r], so F Fᵀ = W M Wᵀ.
  std::vector<double> factor(const std::vector<double>& Wd, int d_out) const {
    std::vector<double> WP(sz(d_out, d));
    for (int row = 0; row < d_out; ++row)
      for (int j = 0; j < d; ++j) WP[sz(row, d) + j] = Wd[sz(row, d) + piv[j] - 1];
    if (r == d) {  // full rank (the usual case): R is triangular, F = (W P) Rᵀ in place
      cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, d_out, d, 1.0,
                  R.data(), d, WP.data(), d);
      return WP;
    }
    std::vector<double> F(sz(d_out, r), 0.0);
    if (r > 0)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d_out, r, d, 1.0, WP.data(), d, R.data(),
                  d, 0.0, F.data(), r);
    return F;
  }
};

// ‖F‖² − (sum of the top k eigenvalues of F Fᵀ), F [rows x r].
double residual_after_top(const std::vector<double>& F, int rows, int r, int k) {
  double total = 0;
  for (double f : F) total += f * f;
  if (k == 0 || r == 0) return total;
  const quant_detail::TopEigen te = top_left_singular(F.data(), rows, r, std::min(k, r));
  for (double l : te.lambda) total -= l;
  return std::max(total, 0.0);
}

void check_cov_dim(const LrcCovariances& cov, int d_in, const char* where) {
  if (cov.d != d_in)
    fail(where,
         "covariances are for d = " + std::to_string(cov.d) + ", not " + std::to_string(d_in));
}

}  // namespace

namespace {

// Alg. 4 (Init-LR, Prop. 3.4): U = eig_k(Σinit), Σinit = Σ1 - Σ2 = W M Wᵀ, V = WᵀU (M = 0, as
// without Q_a: Σx in its place, see SchurFactor).
LowRankFactors init_lr_on(const float* W, int d_out, int d_in, const Ridged& rs, int k) {
  if (k == 0) return {};
  const std::vector<double> Wd = to_double(W, sz(d_out, d_in));
  const SchurFactor sf(rs, "init_lr", /*sx_when_zero=*/true);
  const std::vector<double> F = sf.factor(Wd, d_out);
  LowRankFactors lr = top_factors(F.data(), d_out, sf.r, k);
  // V = WᵀU
  lr.v.assign(sz(d_in, k), 0.0);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d_in, k, d_out, 1.0, Wd.data(), d_in,
              lr.u.data(), k, 0.0, lr.v.data(), k);
  return lr;
}

// Alg. 2 line 4 (Prop. 3.1): W̃ = (W - UVᵀ) Σxy Σy⁻¹.
std::vector<double> update_quant_target_on(const float* W, const LowRankFactors& lr, int d_out,
                                           int d_in, const Ridged& rs) {
  const int d = d_in;
  std::vector<double> A = to_double(W, sz(d_out, d));
  if (lr.rank > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d_out, d, lr.rank, -1.0, lr.u.data(),
                lr.rank, lr.v.data(), lr.rank, 1.0, A.data(), d);
  const std::vector<double> Ly =
      cholesky_lower(rs.yy, d, "update_quant_target", "Σy = YYᵀ + εy I", rs.ey);
  return times_sxy_solve_sy(A.data(), d_out, d, Ly, rs);
}

// Alg. 3 (Update-LR, Prop. 3.3): Σ = Σ1 + Σ2 - Σ3 = B Σx Bᵀ with B = W - Ŵ Σyx Σx⁻¹,
// U = eig_k(Σ), V = [Wᵀ - Σx⁻¹ Σxy Ŵᵀ] U = Bᵀ U.
// Σ is formed as F Fᵀ with F = B L_x (Σx = L_x L_xᵀ), PSD by construction, whereas the paper's
// Σ1 + Σ2 - Σ3 suffers cancellation. Since Σx⁻¹ L_x = L_x⁻ᵀ, F needs no solve with Σx:
//   F = W L_x - (Ŵ Σyx) L_x⁻ᵀ,    and    V = Bᵀ U = L_x⁻ᵀ (Fᵀ U).
LowRankFactors update_lr_on(const float* W, const float* w_hat, int d_out, int d_in,
                            const Ridged& rs, int k) {
  if (k == 0) return {};
  const int d = d_in;
  const std::vector<double> Lx = cholesky_lower(rs.xx, d, "update_lr", "Σx = XXᵀ + εx I", rs.ex);
  // G = (Ŵ Σyx) L_x⁻ᵀ, with Σyx = Σxyᵀ.
  std::vector<double> G(sz(d_out, d));
  {
    const std::vector<double> Whd = to_double(w_hat, sz(d_out, d));
    std::vector<double> ridged_xy;  // Σxy with its ridge (none: the statistics themselves)
    if (rs.exy != 0.0) ridged_xy = rs.sxy();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d_out, d, d, 1.0, Whd.data(), d,
                rs.exy != 0.0 ? ridged_xy.data() : rs.xy, d, 0.0, G.data(), d);
  }
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, d_out, d, 1.0,
              Lx.data(), d, G.data(), d);
  // F = W L_x - G
  std::vector<double> F = to_double(W, sz(d_out, d));
  cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, d_out, d, 1.0,
              Lx.data(), d, F.data(), d);
  for (size_t i = 0; i < F.size(); ++i) F[i] -= G[i];
  G = {};
  LowRankFactors lr = top_factors(F.data(), d_out, d, k);
  // V = L_x⁻ᵀ (Fᵀ U)
  lr.v.assign(sz(d_in, k), 0.0);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, k, d_out, 1.0, F.data(), d, lr.u.data(),
              k, 0.0, lr.v.data(), k);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, d, k, 1.0, Lx.data(),
              d, lr.v.data(), k);
  return lr;
}

}  // namespace

LowRankFactors init_lr(const float* W, int d_out, int d_in, const LrcCovariances& cov, int k) {
  check_rank(k, d_out, d_in, "init_lr");
  check_cov_dim(cov, d_in, "init_lr");
  return init_lr_on(W, d_out, d_in, Ridged::of(cov), k);
}

// Eq. 7's optimal value (Prop. 3.4): tr(W M Wᵀ) - sum_{j<=k} λ_j(W M Wᵀ) = ‖F‖² - top-k.
double relaxed_objective(const float* W, int d_out, int d_in, const LrcCovariances& cov, int k) {
  return relaxed_objectives({W}, {d_out}, {k}, d_in, cov)[0];
}

std::vector<double> relaxed_objectives(const std::vector<const float*>& W,
                                       const std::vector<int>& d_outs, const std::vector<int>& ks,
                                       int d_in, const LrcCovariances& cov) {
  const char* where = "relaxed_objective";
  check_cov_dim(cov, d_in, where);
  if (W.size() != d_outs.size() || W.size() != ks.size())
    fail(where, "need one d_out and one rank per matrix");
  for (size_t m = 0; m < W.size(); ++m) check_rank(ks[m], d_outs[m], d_in, where);
  const SchurFactor sf(Ridged::of(cov), where);  // shared by every matrix of the group
  std::vector<double> out;
  for (size_t m = 0; m < W.size(); ++m) {
    const std::vector<double> F = sf.factor(to_double(W[m], sz(d_outs[m], d_in)), d_outs[m]);
    out.push_back(residual_after_top(F, d_outs[m], sf.r, ks[m]));
  }
  return out;
}

std::vector<double> update_quant_target(const float* W, const LowRankFactors& lr, int d_out,
                                        int d_in, const LrcCovariances& cov) {
  check_cov_dim(cov, d_in, "update_quant_target");
  return update_quant_target_on(W, lr, d_out, d_in, Ridged::of(cov));
}

LowRankFactors update_lr(const float* W, const float* w_hat, int d_out, int d_in,
                         const LrcCovariances& cov, int k) {
  check_rank(k, d_out, d_in, "update_lr");
  check_cov_dim(cov, d_in, "update_lr");
  return update_lr_on(W, w_hat, d_out, d_in, Ridged::of(cov), k);
}

void keep_leading_factors(LowRankFactors& lr, int k, int d_out, int d_in) {
  if (k > lr.rank) fail("keep_leading_factors", "cannot keep more columns than there are");
  auto slice = [&](std::vector<double>& m, int rows) {
    std::vector<double> out(sz(rows, k));
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < k; ++j) out[sz(r, k) + j] = m[sz(r, lr.rank) + j];
    m = std::move(out);
  };
  slice(lr.u, d_out);
  slice(lr.v, d_in);
  lr.rank = k;
}

namespace {

// Algorithm 1 at opt.eps_rel (lrc_quantize has checked its arguments).
LowRankQuantized lrc_quantize_at(const float* W, int d_out, int d_in, const LayerStats& stats,
                                 const LrcOptions& opt) {
  const int k = opt.rank;
  // Lines 3-5 as ridges on the statistics: no d² copies (Ridged).
  const Ridged rs = ridged_stats(stats, opt.reg, opt.eps_rel);
  LowRankFactors lr = init_lr_on(W, d_out, d_in, rs, k);  // line 6
  LowRankQuantized out;
  out.w_hat.resize(sz(d_out, d_in));
  std::vector<float> target(sz(d_out, d_in));
  const int k_spec = std::min(std::max(k, opt.spectrum_rank), std::min(d_out, d_in));
  for (int t = 0; t < opt.iters; ++t) {
    // line 8: Update-Quant, Ŵ = Q(W̃) against H = Σy.
    const std::vector<double> wt = update_quant_target_on(W, lr, d_out, d_in, rs);
    for (size_t i = 0; i < wt.size(); ++i) target[i] = static_cast<float>(wt[i]);
    const auto tq = std::chrono::steady_clock::now();
    out.packed = opt.use_gptq
                     ? gptq_ridged(target.data(), d_out, d_in, rs.yy, rs.ey, opt.w, opt.gptq)
                     : quantize_rtn(target.data(), d_out, d_in, opt.w);
    if (opt.gptq_seconds)
      *opt.gptq_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - tq).count();
    dequantize(out.packed, d_out, d_in, out.w_hat.data());
    // line 9: Update-LR given Ŵ (the last one with the longer spectrum, if asked for).
    const bool last = t + 1 == opt.iters;
    lr = update_lr_on(W, out.w_hat.data(), d_out, d_in, rs, last ? k_spec : k);
    if (last && k_spec > k) keep_leading_factors(lr, k, d_out, d_in);
  }
  out.rank = k;
  out.u.assign(lr.u.begin(), lr.u.end());
  out.v.assign(lr.v.begin(), lr.v.end());
  out.eigenvalues = std::move(lr.eigenvalues);
  out.objective = opt.compute_objective ? lrc_objective(W, out.w_hat.data(), out.u.data(),
                                                        out.v.data(), k, d_out, d_in, stats)
                                        : -1.0;
  return out;
}

}  // namespace

// Algorithm 1 (LRC).
LowRankQuantized lrc_quantize(const float* W, int d_out, int d_in, const LayerStats& stats,
                              const LrcOptions& opt) {
  const char* where = "lrc_quantize";
  if (d_out <= 0 || d_in <= 0)
    fail(where, "bad shape " + std::to_string(d_out) + " x " + std::to_string(d_in));
  check_weight_quant_spec(opt.w, d_in, where);
  check_rank(opt.rank, d_out, d_in, where);
  if (opt.iters < 1) fail(where, "LrcOptions.iters must be >= 1, got " + std::to_string(opt.iters));
  quant_detail::require_finite(W, d_out, d_in, where, "W");
  check_layer_stats(stats, d_in, where);
  // A failed factorisation reruns the whole algorithm with eps_rel ×10 (damping.h).
  return with_damping(opt.eps_rel, "lrc: eps_rel", opt.log, [&](double eps_rel) {
    LrcOptions o = opt;
    o.eps_rel = eps_rel;
    return lrc_quantize_at(W, d_out, d_in, stats, o);
  });
}

}  // namespace lrc
