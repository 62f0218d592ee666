// Targets from the FP model (--target fp, lrc/quant/fp_target.h): the X̄Xᵀ statistic against
// naive sums, and W_t = W (X̄Xᵀ + εI)(XXᵀ + εI)⁻¹ against the brute-force ridge least squares.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/quant/fp_target.h"
#include "lrc/quant/stats.h"
#include "quant_dense_reference.h"
#include "quant_synthetic_data.h"

namespace {

using lrc::test::Mat;

lrc::ActQuantSpec a4() {
  lrc::ActQuantSpec s;
  s.bits = 4;
  s.clip = 0.9f;
  return s;
}

// X̄ = X + noise: the FP model's inputs beside the quantized model's, [n x d] row-major.
std::vector<float> perturbed(const std::vector<float>& x, float sd, uint64_t seed) {
  std::vector<float> out(x);
  const std::vector<float> e = lrc::test::gaussian(x.size(), seed, sd);
  for (size_t i = 0; i < out.size(); ++i) out[i] += e[i];
  return out;
}

// The statistics as fp_target_weights reads them, summed in the test.
lrc::LayerStats stats_of(const std::vector<float>& x, const std::vector<float>& xf, int64_t n,
                         int d) {
  lrc::StatsAccumulator acc(d, a4());
  acc.add(x.data(), n, xf.data());
  return acc.finish();
}

TEST(QuantFpTarget, CrossStatisticMatchesNaiveSumsInBothPrecisions) {
  const int d = 20;
  const int64_t n = 2500;  // more than one 2048-token block
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 3);
  const std::vector<float> Xf = perturbed(X, 0.3f, 4);
  Mat fx(d * d, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) fx[i * d + j] += double(Xf[t * d + i]) * X[t * d + j];
  for (auto prec : {lrc::StatsPrecision::Float64, lrc::StatsPrecision::Mixed}) {
    lrc::StatsAccumulator acc(d, a4(), true, prec);
    acc.add(X.data(), 1000, Xf.data());
    acc.add(X.data() + 1000 * d, n - 1000, Xf.data() + 1000 * d);
    const lrc::LayerStats s = acc.finish();
    ASSERT_EQ(s.fx.size(), size_t(d * d));
    const double tol = prec == lrc::StatsPrecision::Float64 ? 1e-12 : 1e-5;
    EXPECT_LT(lrc::test::max_abs_diff(s.fx, fx) / lrc::test::max_abs(fx), tol);
  }
  // Without x_fp there is no fx; mixing calls with and without it is an error.
  lrc::StatsAccumulator plain(d, a4());
  plain.add(X.data(), n);
  EXPECT_TRUE(plain.finish().fx.empty());
  lrc::StatsAccumulator mixed(d, a4());
  mixed.add(X.data(), 10, Xf.data());
  EXPECT_THROW(mixed.add(X.data(), 10), lrc::Error);
}

TEST(QuantFpTarget, EqualInputsGiveWItself) {
  const int d = 16, d_out = 12;
  const int64_t n = 400;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 5);
  const std::vector<float> W = lrc::test::random_weight(d_out, d, 6);
  const std::vector<float> Wt =
      lrc::fp_target_weights(W.data(), d_out, d, stats_of(X, X, n, d), 1e-2, "test");
  for (size_t i = 0; i < W.size(); ++i) EXPECT_NEAR(Wt[i], W[i], 1e-5 * (1 + std::fabs(W[i])));
}

// W_t = argmin_W' ‖W A − W' B‖² with A = [X̄ᵀ, √ε I], B = [Xᵀ, √ε I] (tokens as columns plus d
// virtual samples): equal to W A B⁺, and no perturbation lowers the objective. With a mix α
// the target's inputs are (1 − α) X + α X̄.
class QuantFpTargetMix : public ::testing::TestWithParam<double> {};

TEST_P(QuantFpTargetMix, IsTheRidgeLeastSquaresSolution) {
  const double mix = GetParam();
  const int d = 10, d_out = 7;
  const int64_t n = 60;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 7);
  const std::vector<float> Xf = perturbed(X, 0.5f, 8);
  const std::vector<float> W = lrc::test::random_weight(d_out, d, 9);
  const double eps_rel = 0.05;
  const lrc::LayerStats s = stats_of(X, Xf, n, d);
  const std::vector<float> Wt = lrc::fp_target_weights(W.data(), d_out, d, s, eps_rel, "test", mix);

  double tr = 0;
  for (int i = 0; i < d; ++i) tr += s.xx[i * d + i];
  const double se = std::sqrt(eps_rel * tr / d);
  const int cols = static_cast<int>(n) + d;
  Mat A(d * cols, 0.0), B(d * cols, 0.0);  // d x (n + d)
  for (int i = 0; i < d; ++i) {
    for (int64_t t = 0; t < n; ++t) {
      A[i * cols + t] = (1 - mix) * X[t * d + i] + mix * Xf[t * d + i];
      B[i * cols + t] = X[t * d + i];
    }
    A[i * cols + n + i] = se;
    B[i * cols + n + i] = se;
  }
  const Mat Wd(W.begin(), W.end());
  const Mat target = lrc::test::matmul(Wd, A, d_out, d, cols);  // W A
  const Mat ref = lrc::test::matmul(target, lrc::test::pinv(B, d, cols), d_out, cols, d);
  const Mat Wtd(Wt.begin(), Wt.end());
  EXPECT_LT(lrc::test::max_abs_diff(Wtd, ref), 1e-5 * lrc::test::max_abs(ref));

  auto objective = [&](const Mat& w) {
    return lrc::test::sumsq(lrc::test::sub(target, lrc::test::matmul(w, B, d_out, d, cols)));
  };
  const double best = objective(ref);
  EXPECT_LT(best, objective(Wd));  // X̄ ≠ X: W itself is not the solution
  std::mt19937_64 rng(10);
  std::normal_distribution<double> nd(0.0, 1e-3);
  for (int trial = 0; trial < 20; ++trial) {
    Mat p(ref);
    for (double& v : p) v += nd(rng);
    EXPECT_GE(objective(p), best);
  }
}

INSTANTIATE_TEST_SUITE_P(Mixes, QuantFpTargetMix, ::testing::Values(1.0, 0.3));

TEST(QuantFpTarget, MixZeroIsWExactly) {
  const int d = 12, d_out = 5;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(200, d, 13);
  const std::vector<float> W = lrc::test::random_weight(d_out, d, 14);
  const std::vector<float> Wt = lrc::fp_target_weights(
      W.data(), d_out, d, stats_of(X, perturbed(X, 0.5f, 15), 200, d), 1e-2, "test", 0.0);
  EXPECT_EQ(Wt, W);
}

TEST(QuantFpTarget, MissingCrossStatisticNamesTheLayer) {
  const int d = 8;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(100, d, 11);
  const std::vector<float> W = lrc::test::random_weight(4, d, 12);
  lrc::StatsAccumulator acc(d, a4());
  acc.add(X.data(), 100);
  try {
    (void)lrc::fp_target_weights(W.data(), 4, d, acc.finish(), 1e-2, "layers.3.mlp.up_proj");
    FAIL() << "expected lrc::Error";
  } catch (const lrc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.3.mlp.up_proj"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("fx"), std::string::npos);
  }
}

}  // namespace
