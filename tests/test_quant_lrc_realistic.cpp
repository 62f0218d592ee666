// LRC against the baselines on LLM-like synthetic activations at W4A4: every method is scored
// by the eq. 2 objective with the same Y = Q_a(X).
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "lrc/quant/gptq.h"
#include "lrc/quant/lrc_solver.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/svd_baseline.h"
#include "lrc/quant/weight_quant.h"
#include "quant_synthetic_data.h"

namespace {

struct LayerCase {
  int d_out, d_in;
  int64_t n;
  std::vector<float> W, X;
};

LayerCase make_case(int d_out, int d_in, int64_t n, uint64_t seed) {
  return {d_out, d_in, n, lrc::test::random_weight(d_out, d_in, seed),
          lrc::test::heavy_tailed_activations(n, d_in, seed + 1)};
}

lrc::LayerStats stats_of(const LayerCase& s, const lrc::ActQuantSpec& act) {
  lrc::StatsAccumulator acc(s.d_in, act);
  acc.add(s.X.data(), s.n);
  return acc.finish();
}

TEST(QuantLrcRealistic, W4A4OrderingLrcSvdGptqRtn) {
  const LayerCase s = make_case(192, 256, 4096, 31);
  lrc::ActQuantSpec act;
  act.bits = 4;
  const lrc::LayerStats st = stats_of(s, act);
  const lrc::WeightQuantSpec wq{4, 0, true, true};
  const int k = lrc::rank_from_fraction(0.1, s.d_out, s.d_in);
  const double energy = lrc::output_energy(s.W.data(), s.d_out, s.d_in, st);

  std::vector<float> w_rtn(s.W.size()), w_gptq(s.W.size());
  lrc::dequantize(lrc::quantize_rtn(s.W.data(), s.d_out, s.d_in, wq), s.d_out, s.d_in,
                  w_rtn.data());
  // Plain GPTQ (QuaRot): H = XXᵀ.
  lrc::dequantize(lrc::gptq(s.W.data(), s.d_out, s.d_in, st.xx.data(), wq, {}), s.d_out, s.d_in,
                  w_gptq.data());
  const double f_rtn =
      lrc::lrc_objective(s.W.data(), w_rtn.data(), nullptr, nullptr, 0, s.d_out, s.d_in, st);
  const double f_gptq =
      lrc::lrc_objective(s.W.data(), w_gptq.data(), nullptr, nullptr, 0, s.d_out, s.d_in, st);
  const lrc::LowRankQuantized svd = lrc::svd_quantize(s.W.data(), s.d_out, s.d_in, st, k, wq, {});
  lrc::LrcOptions opt;
  opt.rank = k;
  opt.w = wq;
  opt.reg = lrc::LrcRegularization::Paper;
  const lrc::LowRankQuantized lrc_p = lrc::lrc_quantize(s.W.data(), s.d_out, s.d_in, st, opt);
  opt.reg = lrc::LrcRegularization::Consistent;
  const lrc::LowRankQuantized lrc_c = lrc::lrc_quantize(s.W.data(), s.d_out, s.d_in, st, opt);
  opt.rank = 0;
  const lrc::LowRankQuantized lrc_0 = lrc::lrc_quantize(s.W.data(), s.d_out, s.d_in, st, opt);

  std::printf(
      "W4A4 %dx%d, n=%ld, k=%d; objective / ‖WX‖²:\n  RTN %.5f  GPTQ %.5f  SVD %.5f  "
      "LRC(k=0) %.5f  LRC(paper) %.5f  LRC(consistent) %.5f\n",
      s.d_out, s.d_in, static_cast<long>(s.n), k, f_rtn / energy, f_gptq / energy,
      svd.objective / energy, lrc_0.objective / energy, lrc_p.objective / energy,
      lrc_c.objective / energy);
  EXPECT_LE(f_gptq, f_rtn);
  EXPECT_LT(svd.objective, f_gptq);
  EXPECT_LT(lrc_p.objective, svd.objective);
  EXPECT_LT(lrc_c.objective, svd.objective);
  // Accounting for Q_a in the Hessian alone (k = 0) already beats plain GPTQ.
  EXPECT_LT(lrc_0.objective, f_gptq);
  EXPECT_LT(lrc_p.objective, lrc_0.objective);
}

TEST(QuantLrcRealistic, MoreIterationsAndRankHelp) {
  const LayerCase s = make_case(128, 128, 4096, 41);
  lrc::ActQuantSpec act;
  act.bits = 4;
  const lrc::LayerStats st = stats_of(s, act);
  lrc::LrcOptions opt;
  opt.w = {4, 0, true, true};
  double prev = 1e300;
  for (int k : {0, 8, 32}) {
    opt.rank = k;
    const double f = lrc::lrc_quantize(s.W.data(), s.d_out, s.d_in, st, opt).objective;
    EXPECT_LT(f, prev) << "rank " << k;
    prev = f;
  }
}

TEST(QuantLrcRealistic, FullRankA16RecoversW) {
  const LayerCase s = make_case(128, 160, 2048, 51);
  const lrc::LayerStats st = stats_of(s, lrc::ActQuantSpec{});
  const double energy = lrc::output_energy(s.W.data(), s.d_out, s.d_in, st);
  for (lrc::LrcRegularization reg :
       {lrc::LrcRegularization::Paper, lrc::LrcRegularization::Consistent}) {
    lrc::LrcOptions opt;
    opt.rank = 128;  // min(d_in, d_out)
    opt.w = {4, 0, true, true};
    opt.reg = reg;
    const lrc::LowRankQuantized r = lrc::lrc_quantize(s.W.data(), s.d_out, s.d_in, st, opt);
    EXPECT_LT(r.objective, 1e-10 * energy) << "reg " << int(reg);
  }
}

}  // namespace
