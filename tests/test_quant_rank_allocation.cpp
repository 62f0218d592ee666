// Greedy rank allocation under a parameter budget (include/lrc/quant/rank_allocation.h):
// the budget is never exceeded, equal spectra of equal shapes give the uniform allocation,
// and with equal costs the greedy choice is the exact optimum (brute force at tiny sizes).
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/quant/rank.h"
#include "lrc/quant/rank_allocation.h"

namespace {

using lrc::MatrixSpectrum;

std::vector<double> random_spectrum(std::mt19937_64& rng, int n) {
  std::exponential_distribution<double> e(1.0);
  std::vector<double> g(n);
  double v = 10 * e(rng) + 1;
  for (auto& x : g) x = v *= std::uniform_real_distribution<double>(0.3, 1.0)(rng);
  return g;  // descending, positive
}

int64_t cost(const std::vector<MatrixSpectrum>& m, const std::vector<int>& r) {
  int64_t c = 0;
  for (size_t i = 0; i < m.size(); ++i) c += static_cast<int64_t>(r[i]) * (m[i].d_out + m[i].d_in);
  return c;
}

double gain(const std::vector<MatrixSpectrum>& m, const std::vector<int>& r) {
  double g = 0;
  for (size_t i = 0; i < m.size(); ++i)
    for (int j = 0; j < r[i]; ++j) g += m[i].gains[j];
  return g;
}

}  // namespace

TEST(QuantRankAllocation, EqualSpectraGiveTheUniformAllocation) {
  const std::vector<double> g{9, 5, 4, 2, 1, 0.5, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001};
  for (double f : {0.1, 0.2, 0.3}) {
    std::vector<MatrixSpectrum> m(7, MatrixSpectrum{24, 40, g});
    const int64_t budget = lrc::uniform_rank_budget(m, f);
    const std::vector<int> r = lrc::allocate_ranks(m, budget);
    const int k = lrc::rank_from_fraction(f, 24, 40);
    for (int ri : r) EXPECT_EQ(ri, k) << "f " << f;
    EXPECT_EQ(cost(m, r), budget);
  }
}

TEST(QuantRankAllocation, NeverExceedsTheBudgetAndBeatsUniform) {
  std::mt19937_64 rng(3);
  const int shapes[][2] = {{64, 64}, {16, 64}, {128, 64}, {64, 128}, {48, 48}};
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<MatrixSpectrum> m;
    for (const auto& s : shapes) m.push_back({s[0], s[1], random_spectrum(rng, 40)});
    for (double f : {0.1, 0.3}) {
      const int64_t budget = lrc::uniform_rank_budget(m, f);
      const std::vector<int> r = lrc::allocate_ranks(m, budget);
      EXPECT_LE(cost(m, r), budget);
      std::vector<int> uniform;
      double max_gain = 0;
      for (const auto& s : m) {
        uniform.push_back(lrc::rank_from_fraction(f, s.d_out, s.d_in));
        max_gain = std::max(max_gain, s.gains[0]);
      }
      // Greedy by gain per parameter is optimal up to the last item that did not fit.
      EXPECT_GE(gain(m, r), gain(m, uniform) - max_gain);
      for (size_t i = 0; i < m.size(); ++i)
        EXPECT_LE(r[i], std::min({m[i].d_out, m[i].d_in, static_cast<int>(m[i].gains.size())}));
    }
  }
}

TEST(QuantRankAllocation, EqualCostsGiveTheExactOptimum) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<MatrixSpectrum> m;
    for (int i = 0; i < 3; ++i) m.push_back({5, 7, random_spectrum(rng, 5)});
    const int64_t budget = 12 * (4 + trial % 9);  // 4..12 ranks of cost 12
    const std::vector<int> r = lrc::allocate_ranks(m, budget);
    double best = 0;
    std::vector<int> x(3);
    std::function<void(size_t)> search = [&](size_t i) {
      if (i == m.size()) {
        if (cost(m, x) <= budget) best = std::max(best, gain(m, x));
        return;
      }
      for (x[i] = 0; x[i] <= 5; ++x[i]) search(i + 1);
    };
    search(0);
    EXPECT_NEAR(gain(m, r), best, 1e-12 * best);
  }
}

TEST(QuantRankAllocation, CapsAndBadInput) {
  // Ranks stop at min(d_out, d_in), at the spectrum's length and at zero gains.
  std::vector<MatrixSpectrum> m{{3, 8, {5, 4, 3, 2, 1}}, {8, 8, {6, 0, 0}}, {8, 8, {1, 1}}};
  const std::vector<int> r = lrc::allocate_ranks(m, 1000000);
  EXPECT_EQ(r, (std::vector<int>{3, 1, 2}));
  EXPECT_EQ(lrc::allocate_ranks(m, 0), (std::vector<int>{0, 0, 0}));
  EXPECT_THROW(lrc::allocate_ranks(m, -1), lrc::Error);
  EXPECT_THROW(lrc::allocate_ranks({{4, 4, {1, 2}}}, 10), lrc::Error);   // not descending
  EXPECT_THROW(lrc::allocate_ranks({{4, 4, {1, -1}}}, 10), lrc::Error);  // negative
  EXPECT_THROW(lrc::allocate_ranks({{0, 4, {1}}}, 10), lrc::Error);      // bad shape
}
