// LRC's closed-form steps against brute force at tiny sizes (d <= 16), in float64.
//
// Both regularisations are exact Gram matrices of augmented data (lrc_solver.h):
//   Paper:      X̄ = [X, √εx I, 0],  Ȳ = [Y, 0, √εy I]
//   Consistent: X̄ = [X, √εx I],     Ȳ = [Y, √εy I]
// so every step must equal the minimiser of ‖W X̄ - Ŵ Ȳ - UVᵀ X̄‖², which is computed here
// another way: explicit data matrices, pseudo-inverses and SVDs (Eckart-Young).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/weight_quant.h"
#include "quant_dense_reference.h"
#include "quant_synthetic_data.h"

namespace {

using lrc::LrcRegularization;
using lrc::test::Mat;
using lrc::test::matmul;
using lrc::test::pinv;
using lrc::test::transpose;

struct Problem {
  int d_out, d_in, n;
  std::vector<float> W, X, Y;  // X, Y: [n x d_in], one token a row
  lrc::LayerStats stats;
};

Problem make_problem(int d_out, int d_in, int n, uint64_t seed, bool quantize_act = true) {
  Problem p{d_out,
            d_in,
            n,
            lrc::test::random_weight(d_out, d_in, seed),
            lrc::test::heavy_tailed_activations(n, d_in, seed + 1, 1, 5.f),
            {},
            {}};
  lrc::ActQuantSpec act;
  if (quantize_act) act.bits = 4;
  p.Y.resize(p.X.size());
  lrc::quantize_activations(p.X.data(), n, d_in, act, p.Y.data());
  lrc::StatsAccumulator acc(d_in, act);
  acc.add(p.X.data(), n);
  p.stats = acc.finish();
  return p;
}

// The augmented data matrices (d x N, features as rows like the paper).
struct Augmented {
  Mat X, Y;
  int N;
};
Augmented augment(const Problem& p, const lrc::LrcCovariances& c, LrcRegularization reg) {
  const int d = p.d_in, n = p.n;
  const int N = reg == LrcRegularization::Paper ? n + 2 * d : n + d;
  Augmented a{Mat(static_cast<size_t>(d) * N, 0.0), Mat(static_cast<size_t>(d) * N, 0.0), N};
  for (int i = 0; i < d; ++i) {
    for (int t = 0; t < n; ++t) {
      a.X[i * N + t] = p.X[t * d + i];
      a.Y[i * N + t] = p.Y[t * d + i];
    }
    a.X[i * N + n + i] = std::sqrt(c.eps_x);
    a.Y[i * N + (reg == LrcRegularization::Paper ? n + d : n) + i] = std::sqrt(c.eps_y);
  }
  return a;
}

Mat to_mat(const std::vector<float>& v) { return Mat(v.begin(), v.end()); }

// ‖W X̄ - Ŵ Ȳ - C X̄‖² for a full correction matrix C (d_out x d_in).
double aug_objective(const Problem& p, const Augmented& a, const Mat& Wh, const Mat& C) {
  const Mat A = lrc::test::sub(to_mat(p.W), C);
  return lrc::test::sumsq(
      lrc::test::sub(matmul(A, a.X, p.d_out, p.d_in, a.N), matmul(Wh, a.Y, p.d_out, p.d_in, a.N)));
}

Mat uvt(const lrc::LowRankFactors& lr, int d_out, int d_in) {
  if (lr.rank == 0) return Mat(static_cast<size_t>(d_out) * d_in, 0.0);
  return matmul(lr.u, transpose(lr.v, d_in, lr.rank), d_out, lr.rank, d_in);
}

struct Shape {
  int d_out, d_in, k;
};
// d_out < d_in exercises the direct eigenproblem, d_out > d_in the smaller-Gram path.
const Shape kShapes[] = {{8, 12, 3}, {14, 6, 2}, {16, 16, 5}};
const LrcRegularization kRegs[] = {LrcRegularization::Paper, LrcRegularization::Consistent};

TEST(QuantLrcExact, CovariancesAreGramsOfTheAugmentedData) {
  const Problem p = make_problem(8, 12, 40, 1);
  for (LrcRegularization reg : kRegs) {
    const lrc::LrcCovariances c = lrc::regularized_covariances(p.stats, reg, 0.05);
    const Augmented a = augment(p, c, reg);
    const double s = lrc::test::max_abs(c.sx);
    EXPECT_LT(lrc::test::max_abs_diff(matmul(a.X, transpose(a.X, 12, a.N), 12, a.N, 12), c.sx),
              1e-12 * s);
    EXPECT_LT(lrc::test::max_abs_diff(matmul(a.Y, transpose(a.Y, 12, a.N), 12, a.N, 12), c.sy),
              1e-12 * s);
    EXPECT_LT(lrc::test::max_abs_diff(matmul(a.X, transpose(a.Y, 12, a.N), 12, a.N, 12), c.sxy),
              1e-12 * s);
    // ε = eps_rel · tr(XXᵀ) / d_in
    double tr = 0;
    for (int i = 0; i < 12; ++i) tr += p.stats.xx[i * 12 + i];
    EXPECT_NEAR(c.eps_x, 0.05 * tr / 12, 1e-12 * tr);
  }
}

TEST(QuantLrcExact, UpdateQuantTargetIsTheAugmentedLeastSquaresSolution) {
  for (const Shape& s : kShapes)
    for (LrcRegularization reg : kRegs) {
      const Problem p = make_problem(s.d_out, s.d_in, 50, 2);
      const lrc::LrcCovariances c = lrc::regularized_covariances(p.stats, reg, 0.02);
      const Augmented a = augment(p, c, reg);
      lrc::LowRankFactors lr;
      lr.rank = s.k;
      const std::vector<float> uu = lrc::test::gaussian(s.d_out * s.k, 3);
      lr.u = Mat(uu.begin(), uu.end());
      const std::vector<float> vv = lrc::test::gaussian(s.d_in * s.k, 4, 0.2f);
      lr.v = Mat(vv.begin(), vv.end());
      // argmin_W̃ ‖(W - UVᵀ) X̄ - W̃ Ȳ‖² = (W - UVᵀ) X̄ Ȳ⁺
      const Mat A = lrc::test::sub(to_mat(p.W), uvt(lr, s.d_out, s.d_in));
      const Mat want = matmul(matmul(A, a.X, s.d_out, s.d_in, a.N), pinv(a.Y, s.d_in, a.N), s.d_out,
                              a.N, s.d_in);
      const Mat got = lrc::update_quant_target(p.W.data(), lr, s.d_out, s.d_in, c);
      EXPECT_LT(lrc::test::max_abs_diff(got, want), 1e-9 * lrc::test::max_abs(want))
          << s.d_out << "x" << s.d_in << " reg " << int(reg);
    }
}

TEST(QuantLrcExact, UpdateLrIsTheBestRankKFitAndCannotBeImproved) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> nd;
  for (const Shape& s : kShapes)
    for (LrcRegularization reg : kRegs) {
      const Problem p = make_problem(s.d_out, s.d_in, 60, 6);
      const lrc::LrcCovariances c = lrc::regularized_covariances(p.stats, reg, 0.01);
      const Augmented a = augment(p, c, reg);
      std::vector<float> wh(p.W.size());
      lrc::dequantize(lrc::quantize_rtn(p.W.data(), s.d_out, s.d_in, {3, 0, true, true}), s.d_out,
                      s.d_in, wh.data());
      const Mat Wh = to_mat(wh);
      const lrc::LowRankFactors lr = lrc::update_lr(p.W.data(), wh.data(), s.d_out, s.d_in, c, s.k);
      ASSERT_EQ(lr.rank, s.k);
      // Reduced-rank regression by brute force: C0 = R X̄⁺ is the unconstrained fit of the
      // residual R = W X̄ - Ŵ Ȳ; the best rank-k C has C X̄ = (C0 X̄)_k (Eckart-Young).
      const Mat R = lrc::test::sub(matmul(to_mat(p.W), a.X, s.d_out, s.d_in, a.N),
                                   matmul(Wh, a.Y, s.d_out, s.d_in, a.N));
      const Mat Xp = pinv(a.X, s.d_in, a.N);
      const Mat C0 = matmul(R, Xp, s.d_out, a.N, s.d_in);
      const Mat Z = matmul(C0, a.X, s.d_out, s.d_in, a.N);
      const Mat C =
          matmul(lrc::test::truncate_rank(Z, s.d_out, a.N, s.k), Xp, s.d_out, a.N, s.d_in);
      const Mat got = uvt(lr, s.d_out, s.d_in);
      EXPECT_LT(lrc::test::max_abs_diff(got, C), 1e-8 * lrc::test::max_abs(C))
          << s.d_out << "x" << s.d_in;
      const double best =
          lrc::test::sumsq(lrc::test::sub(R, Z)) + lrc::test::tail_energy(Z, s.d_out, a.N, s.k);
      const double f = aug_objective(p, a, Wh, got);
      EXPECT_NEAR(f, best, 1e-9 * best);
      // The paper's Σ = Σ1 + Σ2 - Σ3 written out (explicit inverse is fine at this size):
      // its top-k eigenvalues are the reported ones, and they are the captured energy.
      const Mat Sxinv = pinv(c.sx, s.d_in, s.d_in);
      const Mat Wd = to_mat(p.W), WdT = transpose(Wd, s.d_out, s.d_in),
                WhT = transpose(Wh, s.d_out, s.d_in);
      const Mat Syx = transpose(c.sxy, s.d_in, s.d_in);
      const Mat S1 =
          matmul(matmul(Wd, c.sx, s.d_out, s.d_in, s.d_in), WdT, s.d_out, s.d_in, s.d_out);
      const Mat S2 = matmul(
          matmul(matmul(matmul(Wh, Syx, s.d_out, s.d_in, s.d_in), Sxinv, s.d_out, s.d_in, s.d_in),
                 c.sxy, s.d_out, s.d_in, s.d_in),
          WhT, s.d_out, s.d_in, s.d_out);
      const Mat S3a =
          matmul(matmul(Wh, Syx, s.d_out, s.d_in, s.d_in), WdT, s.d_out, s.d_in, s.d_out);
      Mat Sig(S1.size());
      for (int i = 0; i < s.d_out; ++i)
        for (int j = 0; j < s.d_out; ++j)
          Sig[i * s.d_out + j] = S1[i * s.d_out + j] + S2[i * s.d_out + j] - S3a[i * s.d_out + j] -
                                 S3a[j * s.d_out + i];
      const lrc::test::Svd e = lrc::test::svd(Sig, s.d_out, s.d_out);  // PSD: singular = eigen
      for (int j = 0; j < s.k; ++j) EXPECT_NEAR(lr.eigenvalues[j], e.s[j], 1e-9 * e.s[0]);
      // Random perturbations of U and V never lower the objective.
      for (int trial = 0; trial < 100; ++trial) {
        const double step = std::pow(10.0, -4 + trial % 4);
        lrc::LowRankFactors q = lr;
        for (double& x : q.u) x += step * nd(rng);
        for (double& x : q.v) x += step * nd(rng) * 0.1;
        ASSERT_GE(aug_objective(p, a, Wh, uvt(q, s.d_out, s.d_in)), f * (1 - 1e-12));
      }
    }
}

TEST(QuantLrcExact, InitLrSolvesTheRelaxedProblem) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  for (const Shape& s : kShapes)
    for (LrcRegularization reg : kRegs)
      for (int n : {60, 6}) {  // n < d_in: M = Σx - Σxy Σy⁻¹ Σyx is singular (Consistent)
        const Problem p = make_problem(s.d_out, s.d_in, n, 8);
        const lrc::LrcCovariances c = lrc::regularized_covariances(p.stats, reg, 0.01);
        const Augmented a = augment(p, c, reg);
        const lrc::LowRankFactors lr = lrc::init_lr(p.W.data(), s.d_out, s.d_in, c, s.k);
        // Eq. 7: min over W̃ (free) and rank-k C of ‖W X̄ - W̃ Ȳ - C X̄‖². Eliminating W̃ projects
        // out the row space of Ȳ: the relaxed objective is ‖(W - C) X̄ P⊥‖², P⊥ = I - Ȳ⁺Ȳ.
        Mat P = matmul(pinv(a.Y, s.d_in, a.N), a.Y, a.N, s.d_in, a.N);
        for (int i = 0; i < a.N; ++i)
          for (int j = 0; j < a.N; ++j) P[i * a.N + j] = (i == j ? 1.0 : 0.0) - P[i * a.N + j];
        const Mat Xt = matmul(a.X, P, s.d_in, a.N, a.N);
        auto relaxed = [&](const Mat& C) {
          return lrc::test::sumsq(matmul(lrc::test::sub(to_mat(p.W), C), Xt, s.d_out, s.d_in, a.N));
        };
        const Mat O = matmul(to_mat(p.W), Xt, s.d_out, s.d_in, a.N);
        const double best = lrc::test::tail_energy(O, s.d_out, a.N, s.k);
        const double f = relaxed(uvt(lr, s.d_out, s.d_in));
        EXPECT_NEAR(f, best, 1e-9 * lrc::test::sumsq(O) + 1e-300)
            << s.d_out << "x" << s.d_in << " reg " << int(reg) << " n " << n;
        // Eq. 7's optimal value from the statistics (the clip search's criterion), at k and 0.
        EXPECT_NEAR(lrc::relaxed_objective(p.W.data(), s.d_out, s.d_in, c, s.k), best,
                    1e-9 * lrc::test::sumsq(O) + 1e-300);
        EXPECT_NEAR(lrc::relaxed_objective(p.W.data(), s.d_out, s.d_in, c, 0), lrc::test::sumsq(O),
                    1e-9 * lrc::test::sumsq(O) + 1e-300);
        // Σinit = W X̃ X̃ᵀ Wᵀ: its top-k eigenvalues are the reported ones.
        const lrc::test::Svd e = lrc::test::svd(O, s.d_out, a.N);
        for (int j = 0; j < s.k; ++j)
          EXPECT_NEAR(lr.eigenvalues[j], e.s[j] * e.s[j], 1e-9 * e.s[0] * e.s[0]);
        // V = WᵀU (Prop. 3.4) and U has orthonormal columns.
        const Mat WtU = matmul(transpose(to_mat(p.W), s.d_out, s.d_in), lr.u, s.d_in, s.d_out, s.k);
        EXPECT_LT(lrc::test::max_abs_diff(WtU, lr.v), 1e-12 * lrc::test::max_abs(WtU));
        const Mat UtU = matmul(transpose(lr.u, s.d_out, s.k), lr.u, s.k, s.d_out, s.k);
        for (int i = 0; i < s.k; ++i)
          for (int j = 0; j < s.k; ++j) EXPECT_NEAR(UtU[i * s.k + j], i == j ? 1.0 : 0.0, 1e-10);
        for (int trial = 0; trial < 100; ++trial) {
          const double step = std::pow(10.0, -4 + trial % 4);
          lrc::LowRankFactors q = lr;
          for (double& x : q.u) x += step * nd(rng);
          for (double& x : q.v) x += step * nd(rng);
          ASSERT_GE(relaxed(uvt(q, s.d_out, s.d_in)),
                    f * (1 - 1e-12) - 1e-14 * lrc::test::sumsq(O));
        }
      }
}

// Without Q_a the consistent ridge makes M = 0: eq. 7's optimum is 0 for every U, and Init-LR
// starts instead from the best rank-k approximation of W in the data's metric: U = eig_k(W Σx
// Wᵀ) (Σx = X̄X̄ᵀ, the ridge included), V = WᵀU.
TEST(QuantLrcExact, InitLrWithoutActivationQuantizationIsTheDataWeightedTopK) {
  for (const Shape& s : kShapes) {
    const Problem p = make_problem(s.d_out, s.d_in, 60, 21, /*quantize_act=*/false);
    const lrc::LrcCovariances c =
        lrc::regularized_covariances(p.stats, LrcRegularization::Consistent, 0.01);
    const Augmented a = augment(p, c, LrcRegularization::Consistent);
    const Mat O = matmul(to_mat(p.W), a.X, s.d_out, s.d_in, a.N);  // W X̄
    EXPECT_LT(lrc::relaxed_objective(p.W.data(), s.d_out, s.d_in, c, s.k),
              1e-9 * lrc::test::sumsq(O));  // M = 0 up to rounding
    const lrc::LowRankFactors lr = lrc::init_lr(p.W.data(), s.d_out, s.d_in, c, s.k);
    const lrc::test::Svd e = lrc::test::svd(O, s.d_out, a.N);
    ASSERT_EQ(lr.eigenvalues.size(), static_cast<size_t>(s.k));
    for (int j = 0; j < s.k; ++j)
      EXPECT_NEAR(lr.eigenvalues[j], e.s[j] * e.s[j], 1e-9 * e.s[0] * e.s[0]) << j;
    // U spans the top-k left singular subspace of W X̄: ‖(I − UUᵀ) W X̄‖² is its tail energy.
    const Mat UtO = matmul(transpose(lr.u, s.d_out, s.k), O, s.k, s.d_out, a.N);
    const Mat UUtO = matmul(lr.u, UtO, s.d_out, s.k, a.N);
    EXPECT_NEAR(lrc::test::sumsq(lrc::test::sub(O, UUtO)),
                lrc::test::tail_energy(O, s.d_out, a.N, s.k), 1e-9 * lrc::test::sumsq(O));
    const Mat WtU = matmul(transpose(to_mat(p.W), s.d_out, s.d_in), lr.u, s.d_in, s.d_out, s.k);
    EXPECT_LT(lrc::test::max_abs_diff(WtU, lr.v), 1e-12 * lrc::test::max_abs(WtU));
  }
}

TEST(QuantLrcExact, ConsistentA16RankZeroIsGptqOnTheSameHessian) {
  const int d_out = 32, d_in = 64;
  const Problem p = make_problem(d_out, d_in, 512, 11, /*quantize_act=*/false);
  lrc::LrcOptions opt;
  opt.rank = 0;
  opt.reg = LrcRegularization::Consistent;
  opt.w = {4, 16, true, true};
  const lrc::LowRankQuantized r = lrc::lrc_quantize(p.W.data(), d_out, d_in, p.stats, opt);
  const lrc::LrcCovariances c = lrc::regularized_covariances(p.stats, opt.reg, opt.eps_rel);
  const lrc::PackedWeight g = lrc::gptq(p.W.data(), d_out, d_in, c.sy.data(), opt.w, opt.gptq);
  EXPECT_EQ(r.packed.codes, g.codes);
  EXPECT_EQ(r.packed.scales, g.scales);
  EXPECT_EQ(r.packed.zeros, g.zeros);
  EXPECT_TRUE(r.u.empty() && r.v.empty());
  // The Paper variant's target shrinks W instead: W̃ = W XXᵀ (XXᵀ + εI)⁻¹ ≠ W.
  const lrc::LrcCovariances cp =
      lrc::regularized_covariances(p.stats, LrcRegularization::Paper, opt.eps_rel);
  const Mat tp = lrc::update_quant_target(p.W.data(), {}, d_out, d_in, cp);
  const Mat tc = lrc::update_quant_target(p.W.data(), {}, d_out, d_in, c);
  EXPECT_LT(lrc::test::max_abs_diff(tc, to_mat(p.W)), 1e-12);
  EXPECT_GT(lrc::test::max_abs_diff(tp, to_mat(p.W)), 1e-4);
}

TEST(QuantLrcExact, ReportedObjectiveIsEquationTwoOnRawData) {
  for (LrcRegularization reg : kRegs) {
    const Problem p = make_problem(12, 16, 400, 13);
    lrc::LrcOptions opt;
    opt.rank = 4;
    opt.iters = 2;
    opt.reg = reg;
    const lrc::LowRankQuantized r = lrc::lrc_quantize(p.W.data(), 12, 16, p.stats, opt);
    ASSERT_EQ(r.u.size(), 12u * 4);
    ASSERT_EQ(r.v.size(), 16u * 4);
    ASSERT_EQ(r.eigenvalues.size(), 4u);
    for (int j = 1; j < 4; ++j) EXPECT_GE(r.eigenvalues[j - 1], r.eigenvalues[j]);
    // ‖WX - ŴY - UVᵀX‖² on the raw tokens.
    double want = 0;
    for (int t = 0; t < p.n; ++t)
      for (int i = 0; i < 12; ++i) {
        double e = 0;
        for (int j = 0; j < 16; ++j) {
          double c = 0;
          for (int q = 0; q < 4; ++q) c += double(r.u[i * 4 + q]) * r.v[j * 4 + q];
          e += (p.W[i * 16 + j] - c) * p.X[t * 16 + j] -
               double(r.w_hat[i * 16 + j]) * p.Y[t * 16 + j];
        }
        want += e * e;
      }
    EXPECT_NEAR(r.objective, want, 1e-9 * want);
  }
}

}  // namespace
