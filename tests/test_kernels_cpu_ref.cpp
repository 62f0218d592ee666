// The CPU reference backend's linear (y = Ŵ Q_a(x) + U Vᵀ x) against a naive float64 double loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/format/linear.h"
#include "lrc/kernels/backend.h"
#include "lrc/quant/weight_quant.h"

namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Q_a written out: per row (and group), scale = c·max|x| / (2^(b-1)-1), round half to even.
std::vector<double> naive_act_quant(const std::vector<float>& x, int n, int d,
                                    const lrc::ActQuantSpec& s) {
  std::vector<double> y(x.begin(), x.end());
  if (!s.enabled()) return y;
  const int g = s.groupsize > 0 ? s.groupsize : d;
  const float maxq = static_cast<float>((1 << (s.bits - 1)) - 1);
  for (int i = 0; i < n; ++i)
    for (int g0 = 0; g0 < d; g0 += g) {
      float amax = 0.f;
      for (int j = g0; j < g0 + g; ++j) amax = std::max(amax, std::fabs(x[i * d + j]));
      const float scale = s.clip * amax / maxq;
      for (int j = g0; j < g0 + g; ++j) {
        const float q = std::clamp(std::nearbyint(x[i * d + j] / scale), -maxq - 1, maxq);
        y[i * d + j] = static_cast<double>(scale * q);
      }
    }
  return y;
}

void expect_matches_naive(const lrc::Linear& L, int n) {
  std::mt19937 rng(7);
  const auto x = randn(static_cast<size_t>(n) * L.d_in, rng);
  std::vector<float> y(static_cast<size_t>(n) * L.d_out);
  lrc::cpu_reference_backend().linear(L, x.data(), n, y.data());
  const auto xq = naive_act_quant(x, n, L.d_in, L.act);
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < L.d_out; ++o) {
      double ref = 0.0;
      for (int j = 0; j < L.d_in; ++j) ref += double(L.w[o * L.d_in + j]) * xq[i * L.d_in + j];
      for (int r = 0; r < L.lr.rank; ++r) {
        double t = 0.0;  // (Vᵀ x)_r on the unquantized x
        for (int j = 0; j < L.d_in; ++j) t += double(L.lr.v[j * L.lr.rank + r]) * x[i * L.d_in + j];
        ref += double(L.lr.u[o * L.lr.rank + r]) * t;
      }
      ASSERT_NEAR(y[i * L.d_out + o], ref, 1e-4 * (1.0 + std::fabs(ref))) << i << "," << o;
    }
}

lrc::Linear make_linear(int d_out, int d_in, int rank, uint32_t seed) {
  std::mt19937 rng(seed);
  lrc::Linear L;
  L.d_out = d_out;
  L.d_in = d_in;
  L.w = randn(static_cast<size_t>(d_out) * d_in, rng, 0.2f);
  L.lr.rank = rank;
  L.lr.u = randn(static_cast<size_t>(d_out) * rank, rng, 0.3f);
  L.lr.v = randn(static_cast<size_t>(d_in) * rank, rng, 0.3f);
  return L;
}

}  // namespace

TEST(CpuRefLinear, PlainMatchesNaive) { expect_matches_naive(make_linear(13, 24, 0, 1), 5); }

TEST(CpuRefLinear, LowRankAndActQuantMatchNaive) {
  auto L = make_linear(17, 32, 3, 2);
  L.act.bits = 4;
  L.act.clip = 0.9f;
  expect_matches_naive(L, 7);
}

TEST(CpuRefLinear, GroupedActQuantMatchesNaive) {
  auto L = make_linear(9, 32, 2, 3);
  L.act.bits = 4;
  L.act.groupsize = 8;
  expect_matches_naive(L, 4);
}

TEST(CpuRefLinear, LowRankActsOnUnquantizedInput) {
  // W = 0: the output is exactly U Vᵀ x, whatever Q_a does to x.
  auto L = make_linear(6, 16, 2, 4);
  std::fill(L.w.begin(), L.w.end(), 0.f);
  L.act.bits = 2;
  auto Lfp = L;
  Lfp.act = {};
  std::mt19937 rng(9);
  const auto x = randn(3 * 16, rng);
  std::vector<float> y1(3 * 6), y2(3 * 6);
  lrc::cpu_reference_backend().linear(L, x.data(), 3, y1.data());
  lrc::cpu_reference_backend().linear(Lfp, x.data(), 3, y2.data());
  EXPECT_EQ(y1, y2);
}

TEST(CpuRefLinear, WrongWeightSizeThrows) {
  auto L = make_linear(4, 8, 0, 5);
  L.w.pop_back();
  std::vector<float> x(8), y(4);
  EXPECT_THROW(lrc::cpu_reference_backend().linear(L, x.data(), 1, y.data()), lrc::Error);
}

namespace {

// A quantized linear with per-token Q_a runs in integer form: y = s_x·s_w·Σ (c_w − z)·c_x with
// the sum exact. Brute force: the sum in int64 from the codes (PackedWeight::code,
// quantize_activation_row), then the scale products in the order the integer kernels use
// (one group: (a·s_w)·s_x; groups: f = fma(a_g, s_w,g, f), then f·s_x). Bit for bit.
void expect_integer_form(const lrc::Linear& Lq, const std::vector<float>& x, int n) {
  const lrc::PackedWeight& p = *Lq.packed;
  std::vector<float> y(static_cast<size_t>(n) * Lq.d_out);
  lrc::cpu_reference_backend().linear(Lq, x.data(), n, y.data());
  const int ng = p.n_groups(), gs = p.group_size();
  std::vector<int8_t> cx(Lq.d_in);
  for (int i = 0; i < n; ++i) {
    float sx = 0.f;
    lrc::quantize_activation_row(x.data() + static_cast<size_t>(i) * Lq.d_in, Lq.d_in, Lq.act,
                                 cx.data(), &sx);
    for (int r = 0; r < Lq.d_out; ++r) {
      float f = 0.f;
      for (int g = 0; g < ng; ++g) {
        int64_t a = 0;
        for (int j = g * gs; j < (g + 1) * gs; ++j)
          a += (p.code(r, j) - static_cast<int64_t>(p.zeros[r * ng + g])) * cx[j];
        const float sw = p.scales[r * ng + g];
        f = ng == 1 ? static_cast<float>(a) * sw : std::fma(static_cast<float>(a), sw, f);
      }
      ASSERT_EQ(y[static_cast<size_t>(i) * Lq.d_out + r], f * sx)
          << "token " << i << " row " << r << " d_in " << Lq.d_in << " groups " << ng;
    }
  }
}

lrc::Linear quantized(const lrc::Linear& Lfp, int groupsize, bool symmetric, int act_bits) {
  lrc::WeightQuantSpec spec;
  spec.groupsize = groupsize;
  spec.symmetric = symmetric;
  lrc::Linear Lq = Lfp;
  Lq.packed = lrc::quantize_rtn(Lfp.w.data(), Lfp.d_out, Lfp.d_in, spec);
  Lq.w.clear();
  Lq.act.bits = act_bits;
  Lq.act.clip = 0.9f;
  return Lq;
}

}  // namespace

TEST(CpuRefLinear, PackedIntegerFormSumsCodesExactly) {
  for (bool sym : {true, false})
    for (int gs : {0, 16})
      for (int n : {1, 9}) {
        const lrc::Linear Lq = quantized(make_linear(19, 48, 0, 11), gs, sym, 4);
        std::mt19937 rng(5);
        expect_integer_form(Lq, randn(static_cast<size_t>(n) * 48, rng), n);
      }
}

TEST(CpuRefLinear, PackedIntegerFormPastTheFloatBoundIsStillExact) {
  // 8-bit activations over 200000 inputs: 15·128·200000 > 2^24, so fp32 sums could round; the
  // float64 path must give the exact integers. Weights and inputs of one sign, spread over
  // [0.5, 1], give codes 7..15 and 63..127: sums ~2.4e8, whose fp32 sgemm is off by ~30.
  constexpr int kIn = 200000;
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> ud(0.5f, 1.f);
  lrc::Linear Lfp = make_linear(3, kIn, 0, 12);
  for (auto& w : Lfp.w) w = ud(rng);
  const lrc::Linear Lq = quantized(Lfp, 0, false, 8);
  std::vector<float> x(2 * kIn);
  for (auto& v : x) v = ud(rng);
  expect_integer_form(Lq, x, 2);
}

// The integer form computes the simulated W4A4 product s_w(c_w − z) · s_x c_x up to float
// rounding; the low-rank branch adds U Vᵀ x as on an FP linear holding the dequantized Ŵ.
TEST(CpuRefLinear, PackedIntegerFormIsTheDequantizedProduct) {
  lrc::Linear Lfp = make_linear(19, 48, 3, 11);
  const lrc::Linear Lq = quantized(Lfp, 16, false, 4);
  Lfp.act = Lq.act;
  Lq.packed->dequantize(Lfp.w.data());
  std::mt19937 rng(5);
  const auto x = randn(9 * 48, rng);
  std::vector<float> yq(9 * 19), yf(9 * 19);
  lrc::cpu_reference_backend().linear(Lq, x.data(), 9, yq.data());
  lrc::cpu_reference_backend().linear(Lfp, x.data(), 9, yf.data());
  for (size_t i = 0; i < yq.size(); ++i) EXPECT_NEAR(yq[i], yf[i], 1e-5 * (1 + std::fabs(yf[i])));
  EXPECT_NE(yq, yf) << "the integer form did not run (or rounds exactly like the dequantized one)";
}

// Configurations outside the integer form (activation groups; fractional zero points) run as
// the dequantized simulation: equal, bit for bit, to an FP linear holding the dequantized Ŵ.
TEST(CpuRefLinear, PackedOtherFormsEqualDequantizedBitForBit) {
  for (int variant : {0, 1}) {
    lrc::Linear Lfp = make_linear(19, 48, 3, 11);
    lrc::Linear Lq = quantized(Lfp, 16, true, 4);
    if (variant == 0) Lq.act.groupsize = 16;
    else Lq.packed->zeros[5] += 0.5f;
    Lfp.act = Lq.act;
    Lq.packed->dequantize(Lfp.w.data());
    std::mt19937 rng(5);
    const auto x = randn(9 * 48, rng);
    std::vector<float> yq(9 * 19), yf(9 * 19);
    lrc::cpu_reference_backend().linear(Lq, x.data(), 9, yq.data());
    lrc::cpu_reference_backend().linear(Lfp, x.data(), 9, yf.data());
    EXPECT_EQ(yq, yf) << "variant " << variant;
  }
}

TEST(CpuRefLinear, PackedShapeMismatchThrows) {
  auto L = make_linear(4, 8, 0, 6);
  L.packed = lrc::quantize_rtn(L.w.data(), 4, 8, lrc::WeightQuantSpec{});
  L.w.clear();
  L.d_out = 5;
  std::vector<float> x(8), y(5);
  EXPECT_THROW(lrc::cpu_reference_backend().linear(L, x.data(), 1, y.data()), lrc::Error);
}
