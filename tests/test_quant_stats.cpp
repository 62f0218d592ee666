// Streaming statistics, the eq. 2 objective from statistics, the activation clip search and
// the rank budget, each against a direct computation on the raw activations.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/quant/act_clip_search.h"
#include "lrc/quant/lrc_clip_search.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/token_subsample.h"
#include "quant_dense_reference.h"
#include "quant_synthetic_data.h"

namespace {

using lrc::test::Mat;

lrc::ActQuantSpec a4(float clip = 1.f, int groupsize = 0) {
  lrc::ActQuantSpec s;
  s.bits = 4;
  s.clip = clip;
  s.groupsize = groupsize;
  return s;
}

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num / den);
}

TEST(QuantStats, MatchesNaiveSumsAndBatchesEqualOneBatch) {
  const int d = 24;
  const int64_t n = 3000;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 1);
  const lrc::ActQuantSpec act = a4(0.9f, 8);

  lrc::StatsAccumulator one(d, act);
  one.add(X.data(), n);
  const lrc::LayerStats s1 = one.finish();
  EXPECT_EQ(s1.n, n);

  lrc::StatsAccumulator many(d, act);
  int64_t t = 0;
  for (int64_t b : {1, 37, 500, 2048, 0}) {
    many.add(X.data() + t * d, b);
    t += b;
  }
  many.add(X.data() + t * d, n - t);
  const lrc::LayerStats s2 = many.finish();
  EXPECT_EQ(s2.n, n);
  EXPECT_LT(rel_diff(s2.xx, s1.xx), 1e-13);
  EXPECT_LT(rel_diff(s2.yy, s1.yy), 1e-13);
  EXPECT_LT(rel_diff(s2.xy, s1.xy), 1e-13);

  // Naive float64 sums with Y = Q_a(X); xy[i][j] = sum_t x_t[i] y_t[j].
  std::vector<float> Y(X.size());
  lrc::quantize_activations(X.data(), n, d, act, Y.data());
  Mat xx(d * d, 0.0), yy(d * d, 0.0), xy(d * d, 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) {
        const double xi = X[k * d + i], xj = X[k * d + j], yi = Y[k * d + i], yj = Y[k * d + j];
        xx[i * d + j] += xi * xj;
        yy[i * d + j] += yi * yj;
        xy[i * d + j] += xi * yj;
      }
  EXPECT_LT(rel_diff(s1.xx, xx), 1e-13);
  EXPECT_LT(rel_diff(s1.yy, yy), 1e-13);
  EXPECT_LT(rel_diff(s1.xy, xy), 1e-13);
  // Y really differs from X at 4 bits, and XYᵀ is not symmetric.
  EXPECT_GT(rel_diff(s1.yy, s1.xx), 1e-3);
  EXPECT_GT(std::fabs(s1.xy[1] - s1.xy[d]), 0.0);
}

// Mixed precision (float32 within 2048-token blocks, float64 across): the same sums to float32
// rounding of a block (far below the 1e-3 by which Y differs from X), symmetric, streamed in
// any batches; the schedule of blocks is what makes a long sum accurate, so 20 blocks of 2048
// tokens are compared against the float64 path, not a float32 running sum.
TEST(QuantStats, MixedPrecisionMatchesFloat64ToBlockRounding) {
  const int d = 40;
  const int64_t n = 20 * 2048;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 5);
  const lrc::ActQuantSpec act = a4(0.9f);
  lrc::StatsAccumulator f64(d, act);
  f64.add(X.data(), n);
  const lrc::LayerStats a = f64.finish();
  lrc::StatsAccumulator mixed(d, act, true, lrc::StatsPrecision::Mixed);
  mixed.add(X.data(), 3000);
  mixed.add(X.data() + 3000 * d, n - 3000);
  const lrc::LayerStats b = mixed.finish();
  EXPECT_EQ(b.n, n);
  for (auto [got, want] : {std::pair{&b.xx, &a.xx}, {&b.yy, &a.yy}, {&b.xy, &a.xy}}) {
    const double r = rel_diff(*got, *want);
    EXPECT_LT(r, 2e-6);
    EXPECT_GT(r, 0.0);  // it is a different computation
  }
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) ASSERT_EQ(b.xx[i * d + j], b.xx[j * d + i]);
  // A float32 running sum over all n tokens would be far worse than the block scheme.
  std::vector<float> run(static_cast<size_t>(d) * d, 0.f);
  for (int64_t k = 0; k < n; ++k)
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) run[i * d + j] += X[k * d + i] * X[k * d + j];
  const std::vector<double> run_d(run.begin(), run.end());
  EXPECT_GT(rel_diff(run_d, a.xx), 10 * rel_diff(b.xx, a.xx));
  EXPECT_EQ(lrc::parse_stats_precision("mixed"), lrc::StatsPrecision::Mixed);
  EXPECT_THROW(lrc::parse_stats_precision("f32"), lrc::Error);
}

// skip_xx (the clip search's reuse of XXᵀ across clip ratios): YYᵀ and XYᵀ bit for bit those
// of the full accumulation, xx left to the caller; misuse is an error.
TEST(QuantStats, SkipXxKeepsTheCrossStatisticsExactly) {
  const int d = 16;
  const int64_t n = 2500;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d, 7);
  for (auto p : {lrc::StatsPrecision::Float64, lrc::StatsPrecision::Mixed}) {
    lrc::StatsAccumulator full(d, a4(0.8f), true, p), cross(d, a4(0.8f), true, p);
    cross.skip_xx();
    full.add(X.data(), n);
    cross.add(X.data(), n);
    const lrc::LayerStats a = full.finish(), b = cross.finish();
    EXPECT_TRUE(b.xx.empty());
    EXPECT_EQ(a.yy, b.yy);
    EXPECT_EQ(a.xy, b.xy);
  }
  lrc::StatsAccumulator late(d, a4());
  late.add(X.data(), 10);
  EXPECT_THROW(late.skip_xx(), lrc::Error);
  lrc::ActQuantSpec none;
  none.bits = 16;
  lrc::StatsAccumulator a16(d, none);
  EXPECT_THROW(a16.skip_xx(), lrc::Error);
}

TEST(QuantStats, UnquantizedActivationsGiveYEqualX) {
  const int d = 16;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(100, d, 2);
  lrc::StatsAccumulator acc(d, lrc::ActQuantSpec{});
  acc.add(X.data(), 100);
  const lrc::LayerStats s = acc.finish();
  EXPECT_EQ(s.yy, s.xx);
  EXPECT_EQ(s.xy, s.xx);
}

TEST(QuantStats, RejectsNonFiniteAndBadShapes) {
  const int d = 8;
  std::vector<float> X = lrc::test::heavy_tailed_activations(10, d, 3);
  X[5 * d + 2] = NAN;
  lrc::StatsAccumulator acc(d, a4());
  try {
    acc.add(X.data(), 10);
    FAIL() << "NaN accepted";
  } catch (const lrc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[5, 2]"), std::string::npos) << e.what();
  }
  X[5 * d + 2] = INFINITY;
  EXPECT_THROW(acc.add(X.data(), 10), lrc::Error);
  EXPECT_THROW(lrc::StatsAccumulator(0, a4()), lrc::Error);
  EXPECT_THROW(lrc::StatsAccumulator(10, a4(1.f, 4)), lrc::Error);  // 4 ∤ 10
  lrc::ActQuantSpec bad = a4();
  bad.bits = 12;
  EXPECT_THROW(lrc::StatsAccumulator(8, bad), lrc::Error);
}

// ‖WX - ŴY - UVᵀX‖² written out on the raw activations.
double raw_objective(const std::vector<float>& W, const std::vector<float>& Wh,
                     const std::vector<float>& U, const std::vector<float>& V, int k, int d_out,
                     int d_in, const std::vector<float>& X, const std::vector<float>& Y,
                     int64_t n) {
  double s = 0;
  std::vector<double> vx(k);
  for (int64_t t = 0; t < n; ++t) {
    for (int c = 0; c < k; ++c) {
      vx[c] = 0;
      for (int j = 0; j < d_in; ++j) vx[c] += double(V[j * k + c]) * X[t * d_in + j];
    }
    for (int r = 0; r < d_out; ++r) {
      double e = 0;
      for (int j = 0; j < d_in; ++j)
        e += double(W[r * d_in + j]) * X[t * d_in + j] - double(Wh[r * d_in + j]) * Y[t * d_in + j];
      for (int c = 0; c < k; ++c) e -= double(U[r * k + c]) * vx[c];
      s += e * e;
    }
  }
  return s;
}

// lrc_objective, output_energy, and eq2_objectives (the pipeline's report: LRC and its GPTQ
// guard in one pass, W's products with the statistics shared, the rank-k terms expanded), over
// more rows than one chunk (512), with and without Q_a.
TEST(QuantObjective, FromStatisticsEqualsRawActivations) {
  const int d_out = 600, d_in = 20, k = 3;
  const int64_t n = 700;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d_in, 4);
  const std::vector<float> W = lrc::test::random_weight(d_out, d_in, 5);
  std::vector<float> Wh = W, Wg = W;
  const std::vector<float> noise = lrc::test::gaussian(W.size(), 6, 0.05f),
                           noise_g = lrc::test::gaussian(W.size(), 9, 0.08f);
  for (size_t i = 0; i < W.size(); ++i) Wh[i] += noise[i], Wg[i] += noise_g[i];
  const std::vector<float> U = lrc::test::gaussian(d_out * k, 7, 0.1f),
                           V = lrc::test::gaussian(d_in * k, 8, 0.1f);
  for (const lrc::ActQuantSpec& act : {a4(), lrc::ActQuantSpec{}}) {
    lrc::StatsAccumulator acc(d_in, act);
    acc.add(X.data(), n);
    const lrc::LayerStats st = acc.finish();
    std::vector<float> Y(X.size());
    lrc::quantize_activations(X.data(), n, d_in, act, Y.data());
    const double want = raw_objective(W, Wh, U, V, k, d_out, d_in, X, Y, n);
    const double got =
        lrc::lrc_objective(W.data(), Wh.data(), U.data(), V.data(), k, d_out, d_in, st);
    EXPECT_NEAR(got, want, 1e-10 * want) << "act bits " << act.bits;
    const double want0 = raw_objective(W, Wh, U, V, 0, d_out, d_in, X, Y, n);
    const double got0 =
        lrc::lrc_objective(W.data(), Wh.data(), nullptr, nullptr, 0, d_out, d_in, st);
    EXPECT_NEAR(got0, want0, 1e-10 * want0);
    const std::vector<float> zero(W.size(), 0.f);
    const double energy = raw_objective(W, zero, U, V, 0, d_out, d_in, X, X, n);
    EXPECT_NEAR(lrc::output_energy(W.data(), d_out, d_in, st), energy, 1e-10 * energy);
    double shared_energy = -1;
    const std::vector<double> shared = lrc::eq2_objectives(
        W.data(), d_out, d_in,
        {{Wh.data(), U.data(), V.data(), k}, {Wg.data(), nullptr, nullptr, 0}}, st,
        &shared_energy);
    ASSERT_EQ(shared.size(), 2u);
    EXPECT_NEAR(shared[0], want, 1e-10 * want) << "act bits " << act.bits;
    const double want_g = raw_objective(W, Wg, U, V, 0, d_out, d_in, X, Y, n);
    EXPECT_NEAR(shared[1], want_g, 1e-10 * want_g) << "act bits " << act.bits;
    EXPECT_NEAR(shared_energy, energy, 1e-10 * energy);
  }
}

// sum_m ‖W_m (X - Q_a^c(X))‖² written out.
std::vector<double> raw_clip_errors(const std::vector<std::vector<float>>& Ws,
                                    const std::vector<int>& d_outs, int d_in,
                                    const std::vector<float>& X, int64_t n,
                                    const std::vector<float>& cands, int groupsize) {
  std::vector<double> out;
  for (float c : cands) {
    std::vector<float> Y(X.size());
    lrc::quantize_activations(X.data(), n, d_in, a4(c, groupsize), Y.data());
    double s = 0;
    for (size_t m = 0; m < Ws.size(); ++m)
      for (int64_t t = 0; t < n; ++t)
        for (int r = 0; r < d_outs[m]; ++r) {
          double e = 0;
          for (int j = 0; j < d_in; ++j)
            e += double(Ws[m][r * d_in + j]) * (double(X[t * d_in + j]) - Y[t * d_in + j]);
          s += e * e;
        }
    out.push_back(s);
  }
  return out;
}

TEST(QuantActClip, ErrorsMatchDirectComputationOnBothPaths) {
  const int d_in = 32;
  const int64_t n = 1500;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d_in, 9);
  // Gram path (48 + 40 > 32 outputs) and direct path (8 + 12 < 32).
  for (const std::vector<int>& d_outs : {std::vector<int>{48, 40}, std::vector<int>{8, 12}}) {
    std::vector<std::vector<float>> Ws;
    std::vector<const float*> ptrs;
    for (size_t m = 0; m < d_outs.size(); ++m)
      Ws.push_back(lrc::test::random_weight(d_outs[m], d_in, 10 + m));
    for (auto& w : Ws) ptrs.push_back(w.data());
    lrc::ActClipSearch search(ptrs, d_outs, d_in, a4(1.f, 0));
    EXPECT_EQ(search.uses_gram(), d_outs[0] == 48);
    search.add(X.data(), 1000);
    search.add(X.data() + 1000 * d_in, n - 1000);
    const std::vector<double> got = search.errors();
    const std::vector<double> want =
        raw_clip_errors(Ws, d_outs, d_in, X, n, search.candidates(), 0);
    ASSERT_EQ(got.size(), want.size());
    size_t best = 0;
    for (size_t c = 0; c < want.size(); ++c) {
      EXPECT_NEAR(got[c], want[c], 1e-4 * want[c]) << "candidate " << c;
      if (want[c] < want[best]) best = c;
    }
    EXPECT_EQ(search.best(), search.candidates()[best]);
    // Heavy tails and outlier channels: some clipping beats none per token.
    EXPECT_LT(search.best(), 1.0f);
  }
  EXPECT_THROW(lrc::ActClipSearch({}, {}, d_in, a4()), lrc::Error);
  const std::vector<float> w = lrc::test::random_weight(4, d_in, 1);
  lrc::ActClipSearch empty({w.data()}, {4}, d_in, a4());
  EXPECT_THROW(empty.best(), lrc::Error);
}

TEST(QuantActClip, LrcSearchMinimisesTheRelaxedObjectiveOfEachCandidate) {
  const int d_in = 24;
  const int64_t n = 900;
  const std::vector<float> X = lrc::test::heavy_tailed_activations(n, d_in, 5);
  const std::vector<int> d_outs{16, 30}, ranks{3, 5};
  std::vector<std::vector<float>> Ws;
  std::vector<const float*> ptrs;
  for (size_t m = 0; m < d_outs.size(); ++m)
    Ws.push_back(lrc::test::random_weight(d_outs[m], d_in, 20 + m));
  for (auto& w : Ws) ptrs.push_back(w.data());
  const std::vector<float> cands{1.0f, 0.9f, 0.8f, 0.7f, 0.6f};
  // Every 3rd token, at most 250 of them.
  lrc::LrcClipSearch search(ptrs, d_outs, ranks, d_in, a4(), lrc::LrcRegularization::Consistent,
                            1e-2, 3, 250, cands);
  search.add(X.data(), 400);
  search.add(X.data() + 400 * d_in, n - 400);
  EXPECT_EQ(search.tokens(), 250);
  const float best = search.best();
  // The same tokens, statistics and eq. 7 optimum computed directly per candidate.
  std::vector<float> kept;
  for (int64_t t = 0; t < n && static_cast<int64_t>(kept.size()) < 250 * d_in; t += 3)
    kept.insert(kept.end(), X.begin() + t * d_in, X.begin() + (t + 1) * d_in);
  std::vector<double> want;
  for (size_t c = 0; c < cands.size(); ++c) {
    lrc::StatsAccumulator acc(d_in, a4(cands[c]));
    acc.add(kept.data(), 250);
    const auto cov =
        lrc::regularized_covariances(acc.finish(), lrc::LrcRegularization::Consistent, 1e-2);
    double j = 0;
    for (size_t m = 0; m < Ws.size(); ++m)
      j += lrc::relaxed_objective(Ws[m].data(), d_outs[m], d_in, cov, ranks[m]);
    want.push_back(j);
  }
  // Coarse to fine: candidates 0, 2, 4 always, then both neighbours of the best of those;
  // every evaluated J equals the direct one, the rest are +inf, and the choice is the best
  // evaluated candidate, a local minimum of the grid.
  size_t coarse = 0;
  for (size_t c = 2; c < cands.size(); c += 2)
    if (want[c] < want[coarse]) coarse = c;
  size_t arg = 0;
  for (size_t c = 0; c < cands.size(); ++c) {
    const bool must = c % 2 == 0 || c + 1 == coarse || c == coarse + 1;
    if (!std::isfinite(search.errors()[c])) {
      EXPECT_FALSE(must) << "candidate " << c << " was not evaluated";
      continue;
    }
    EXPECT_NEAR(search.errors()[c], want[c], 1e-9 * want[c]) << "candidate " << c;
    if (want[c] < search.errors()[arg]) arg = c;
  }
  EXPECT_EQ(best, cands[arg]);
  if (arg > 0) {
    EXPECT_LE(want[arg], want[arg - 1]);
  }
  if (arg + 1 < cands.size()) {
    EXPECT_LE(want[arg], want[arg + 1]);
  }
  // A larger rank can only lower what LRC reaches (at every candidate both evaluated).
  lrc::LrcClipSearch more(ptrs, d_outs, {6, 10}, d_in, a4(), lrc::LrcRegularization::Consistent,
                          1e-2, 3, 250, cands);
  more.add(X.data(), n);
  more.best();
  for (size_t c = 0; c < cands.size(); ++c) {
    if (std::isfinite(more.errors()[c])) {
      EXPECT_LE(more.errors()[c], want[c] * (1 + 1e-12));
    }
  }
  EXPECT_THROW(lrc::LrcClipSearch(ptrs, d_outs, {3, 31}, d_in, a4(), lrc::LrcRegularization::Paper,
                                  1e-2, 1, 0, cands),
               lrc::Error);  // rank 31 > min(30, 24)
}

TEST(QuantTokenSubsample, KeepsEveryStrideThTokenAcrossCalls) {
  const int d = 2;
  std::vector<float> x(20);
  for (int i = 0; i < 20; ++i) x[i] = static_cast<float>(i / d);  // token t holds t, t
  lrc::TokenSubsample s(d, 4, 0);
  s.add(x.data(), 3);
  s.add(x.data() + 3 * d, 7);
  ASSERT_EQ(s.kept(), 3);  // tokens 0, 4, 8
  EXPECT_EQ(s.data()[2], 4.f);
  EXPECT_EQ(s.data()[4], 8.f);
  EXPECT_EQ(lrc::TokenSubsample::stride_for(100, 30), 4);
  EXPECT_EQ(lrc::TokenSubsample::stride_for(10, 30), 1);
}

TEST(QuantRank, FromFraction) {
  EXPECT_EQ(lrc::rank_from_fraction(0.1, 4096, 4096), 204);
  EXPECT_EQ(lrc::rank_from_fraction(0.1, 11008, 4096), 298);
  EXPECT_EQ(lrc::rank_from_fraction(0.3, 100, 100), 15);
  EXPECT_EQ(lrc::rank_from_fraction(0.0, 64, 32), 0);
  EXPECT_EQ(lrc::rank_from_fraction(1.0, 64, 64), 32);
  // U and V never exceed the budget: k (d_out + d_in) <= f d_out d_in.
  for (double f : {0.05, 0.1, 0.25, 0.5})
    for (int dout : {17, 64, 300}) {
      const int k = lrc::rank_from_fraction(f, dout, 96);
      EXPECT_LE(k * (dout + 96.0), f * dout * 96 + 1e-6);
      EXPECT_GT((k + 1) * (dout + 96.0), f * dout * 96);
    }
  EXPECT_THROW(lrc::rank_from_fraction(2.5, 64, 64), lrc::Error);  // 80 > 64
  EXPECT_THROW(lrc::rank_from_fraction(-0.1, 64, 64), lrc::Error);
  EXPECT_THROW(lrc::rank_from_fraction(NAN, 64, 64), lrc::Error);
  EXPECT_THROW(lrc::check_rank(65, 64, 128, "test"), lrc::Error);
  EXPECT_NO_THROW(lrc::check_rank(64, 64, 128, "test"));
}

}  // namespace
