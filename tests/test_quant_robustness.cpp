// Degenerate and invalid inputs: rank-deficient statistics give the documented regularised
// result (finite, never NaN); invalid inputs give a clear lrc::Error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/svd_baseline.h"
#include "lrc/quant/weight_quant.h"
#include "quant_synthetic_data.h"

namespace {

using lrc::LrcRegularization;

lrc::LayerStats stats_of(const std::vector<float>& X, int64_t n, int d, int act_bits = 4) {
  lrc::ActQuantSpec act;
  act.bits = act_bits;
  lrc::StatsAccumulator acc(d, act);
  acc.add(X.data(), n);
  return acc.finish();
}

void expect_finite_result(const lrc::LowRankQuantized& r, const std::string& what) {
  for (float v : r.w_hat) ASSERT_TRUE(std::isfinite(v)) << what;
  for (float v : r.u) ASSERT_TRUE(std::isfinite(v)) << what;
  for (float v : r.v) ASSERT_TRUE(std::isfinite(v)) << what;
  for (double v : r.eigenvalues) ASSERT_TRUE(std::isfinite(v)) << what;
  ASSERT_TRUE(std::isfinite(r.objective)) << what;
}

// Rank-deficient activations: every variant is finite and still far better than Ŵ = 0.
void check_degenerate(const std::vector<float>& X, int64_t n, int d_in, const std::string& what) {
  const int d_out = 24;
  const std::vector<float> W = lrc::test::random_weight(d_out, d_in, 3);
  for (int bits : {4, 16}) {
    const lrc::LayerStats st = stats_of(X, n, d_in, bits);
    const double energy = lrc::output_energy(W.data(), d_out, d_in, st);
    for (LrcRegularization reg : {LrcRegularization::Paper, LrcRegularization::Consistent})
      for (int k : {0, 6, std::min(d_out, d_in)}) {
        lrc::LrcOptions opt;
        opt.rank = k;
        opt.reg = reg;
        opt.iters = 2;
        const lrc::LowRankQuantized r = lrc::lrc_quantize(W.data(), d_out, d_in, st, opt);
        const std::string tag = what + " bits " + std::to_string(bits) + " reg " +
                                std::to_string(int(reg)) + " k " + std::to_string(k);
        expect_finite_result(r, tag);
        if (energy > 0) {
          EXPECT_LT(r.objective, 0.2 * energy) << tag;
        }
      }
    expect_finite_result(lrc::svd_quantize(W.data(), d_out, d_in, st, 6, {}, {}), what + " svd");
  }
}

TEST(QuantRobustness, FewerTokensThanFeatures) {
  const int d = 48;
  check_degenerate(lrc::test::heavy_tailed_activations(20, d, 1), 20, d, "n < d_in");
}

TEST(QuantRobustness, ZeroColumnsAndConstantFeature) {
  const int d = 32;
  const int64_t n = 400;
  std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 2);
  for (int64_t t = 0; t < n; ++t) {
    X[t * d + 4] = 0.f;
    X[t * d + 9] = 0.f;
    X[t * d + 20] = 3.f;  // a constant feature
  }
  check_degenerate(X, n, d, "zero columns + constant");
}

TEST(QuantRobustness, AllZeroActivations) {
  const int d = 16;
  const std::vector<float> X(50 * d, 0.f);
  check_degenerate(X, 50, d, "X = 0");
  // ε falls back to eps_rel when tr(XXᵀ) = 0.
  const lrc::LrcCovariances c =
      lrc::regularized_covariances(stats_of(X, 50, d), LrcRegularization::Paper, 0.01);
  EXPECT_DOUBLE_EQ(c.eps_x, 0.01);
}

// No ridge on singular data: Σx, Σy do not factor, so eps_rel is raised ×10 from a floor until
// they do (lrc/quant/damping.h), recorded in the log; the result is finite. A negative eps_rel
// is still an error.
TEST(QuantRobustness, NoRegularisationOnSingularDataRaisesTheRidge) {
  const int d = 16;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(5, d, 4);
  const lrc::LayerStats st = stats_of(X, 5, d);
  const std::vector<float> W = lrc::test::random_weight(8, d, 5);
  lrc::LrcOptions opt;
  opt.rank = 2;
  opt.eps_rel = 0.0;
  lrc::DampingLog log;
  opt.log = &log;
  expect_finite_result(lrc::lrc_quantize(W.data(), 8, d, st, opt), "eps_rel 0");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].step, "lrc: eps_rel");
  EXPECT_EQ(log[0].configured, 0.0);
  EXPECT_GT(log[0].used, 0.0);
  opt.eps_rel = -1;
  EXPECT_THROW(lrc::lrc_quantize(W.data(), 8, d, st, opt), lrc::Error);
}

TEST(QuantRobustness, NonFiniteInputsThrowNamingTheObject) {
  const int d = 16, d_out = 8;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(100, d, 6);
  const lrc::LayerStats st = stats_of(X, 100, d);
  std::vector<float> W = lrc::test::random_weight(d_out, d, 7);
  lrc::LrcOptions opt;
  opt.rank = 2;
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected one mentioning '" << needle << "'";
    } catch (const lrc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  W[3 * d + 5] = NAN;
  expect_error([&] { lrc::lrc_quantize(W.data(), d_out, d, st, opt); }, "W has a non-finite value");
  expect_error([&] { lrc::gptq(W.data(), d_out, d, st.xx.data(), {}, {}); }, "W has");
  expect_error([&] { lrc::quantize_rtn(W.data(), d_out, d, {}); }, "[3, 5]");
  W[3 * d + 5] = INFINITY;
  expect_error([&] { lrc::svd_quantize(W.data(), d_out, d, st, 2, {}, {}); }, "W has");
  W[3 * d + 5] = 0.1f;
  lrc::LayerStats bad = st;
  bad.xy[7] = NAN;
  expect_error([&] { lrc::lrc_quantize(W.data(), d_out, d, bad, opt); }, "LayerStats.xy");
  std::vector<double> H = st.xx;
  H[0] = INFINITY;
  expect_error([&] { lrc::gptq(W.data(), d_out, d, H.data(), {}, {}); }, "H has");
  bad = st;
  bad.d = d + 1;
  expect_error([&] { lrc::lrc_quantize(W.data(), d_out, d, bad, opt); }, "LayerStats.d");
}

TEST(QuantRobustness, InvalidOptionsThrow) {
  const int d = 16, d_out = 8;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(100, d, 8);
  const lrc::LayerStats st = stats_of(X, 100, d);
  const std::vector<float> W = lrc::test::random_weight(d_out, d, 9);
  lrc::LrcOptions opt;
  opt.rank = 9;  // > min(16, 8)
  EXPECT_THROW(lrc::lrc_quantize(W.data(), d_out, d, st, opt), lrc::Error);
  EXPECT_THROW(lrc::svd_quantize(W.data(), d_out, d, st, 9, {}, {}), lrc::Error);
  opt.rank = -1;
  EXPECT_THROW(lrc::lrc_quantize(W.data(), d_out, d, st, opt), lrc::Error);
  opt.rank = 8;
  EXPECT_NO_THROW(lrc::lrc_quantize(W.data(), d_out, d, st, opt));
  opt.iters = 0;
  EXPECT_THROW(lrc::lrc_quantize(W.data(), d_out, d, st, opt), lrc::Error);
  opt.iters = 1;
  for (int bits : {1, 9}) {
    opt.w.bits = bits;
    EXPECT_THROW(lrc::lrc_quantize(W.data(), d_out, d, st, opt), lrc::Error);
    EXPECT_THROW(lrc::svd_quantize(W.data(), d_out, d, st, 2, opt.w, {}), lrc::Error);
  }
  lrc::GptqOptions g;
  g.block = 0;
  EXPECT_THROW(lrc::gptq(W.data(), d_out, d, st.xx.data(), {}, g), lrc::Error);
}

}  // namespace
