// Weight quantizer basics: bit packing, RTN against a written-out reference, the MSE clip
// search, and GPTQ against RTN on correlated data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lrc/core/error.h"
#include "lrc/format/code_packing.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/objective.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/weight_quant.h"
#include "quant_synthetic_data.h"

namespace {

using lrc::PackedWeight;
using lrc::WeightQuantSpec;

TEST(QuantPacking, RoundTripAllWidths) {
  std::mt19937 rng(7);
  for (int bits = 1; bits <= 8; ++bits)
    for (int64_t count : {1, 2, 3, 7, 8, 9, 255, 1001}) {
      std::vector<uint8_t> codes(count);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      const std::vector<uint8_t> packed = lrc::pack_codes(codes.data(), count, bits);
      ASSERT_EQ(static_cast<int64_t>(packed.size()), (count * bits + 7) / 8);
      std::vector<uint8_t> back(count);
      lrc::unpack_codes(packed.data(), count, bits, back.data());
      EXPECT_EQ(back, codes) << "bits " << bits << " count " << count;
      for (int64_t i = 0; i < count; ++i)
        ASSERT_EQ(lrc::unpack_code(packed.data(), i, bits), codes[i]);
    }
}

TEST(QuantPacking, FourBitIsLowNibbleFirst) {
  const uint8_t codes[5] = {1, 2, 3, 4, 15};
  const std::vector<uint8_t> p = lrc::pack_codes(codes, 5, 4);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0], 0x21);
  EXPECT_EQ(p[1], 0x43);
  EXPECT_EQ(p[2], 0x0F);
  EXPECT_THROW(lrc::pack_codes(codes, 5, 3), lrc::Error);  // 15 does not fit in 3 bits
}

// RTN written out from its definition (QuaRot sym / GPTQ asym, clip grid 1.00..0.70).
std::vector<float> naive_rtn(const std::vector<float>& W, int d_out, int d_in,
                             const WeightQuantSpec& s) {
  const int gs = s.groupsize > 0 ? s.groupsize : d_in;
  const int maxq = (1 << s.bits) - 1;
  std::vector<float> out(W.size());
  for (int r = 0; r < d_out; ++r)
    for (int g0 = 0; g0 < d_in; g0 += gs) {
      const float* w = &W[static_cast<size_t>(r) * d_in + g0];
      double lo = 0, hi = 0;
      for (int j = 0; j < gs; ++j) lo = std::min<double>(lo, w[j]), hi = std::max<double>(hi, w[j]);
      double best_err = INFINITY;
      std::vector<float> best(gs);
      const int steps = s.mse_clip ? 31 : 1;
      for (int i = 0; i < steps; ++i) {
        const double p = 1.0 - 0.01 * i;
        float scale;
        double zero;
        if (s.symmetric) {
          scale = static_cast<float>(p * std::max(-lo, hi) / ((1 << (s.bits - 1)) - 1));
          zero = 1 << (s.bits - 1);
        } else {
          scale = static_cast<float>(p * (hi - lo) / maxq);
          zero = std::clamp(std::nearbyint(-p * lo / scale), 0.0, double(maxq));
        }
        if (!(scale > 0)) scale = 1, zero = s.symmetric ? zero : 0;
        std::vector<float> q(gs);
        double err = 0;
        for (int j = 0; j < gs; ++j) {
          const double c =
              std::clamp(std::nearbyint(w[j] / double(scale)) + zero, 0.0, double(maxq));
          q[j] = static_cast<float>(scale * (c - zero));
          err += (w[j] - double(q[j])) * (w[j] - double(q[j]));
        }
        if (err < best_err) best_err = err, best = q;
      }
      std::copy(best.begin(), best.end(), &out[static_cast<size_t>(r) * d_in + g0]);
    }
  return out;
}

TEST(QuantRtn, MatchesNaiveReference) {
  const int d_out = 24, d_in = 64;
  std::vector<float> W = lrc::test::random_weight(d_out, d_in, 3);
  for (int j = 0; j < d_in; ++j) W[5 * d_in + j] = 0.f;    // an all-zero row
  for (int j = 0; j < d_in; ++j) W[6 * d_in + j] = 0.25f;  // all positive
  for (int bits : {2, 3, 4, 8})
    for (int gs : {0, 16})
      for (bool sym : {true, false})
        for (bool mse : {false, true}) {
          const WeightQuantSpec s{bits, gs, sym, mse};
          const PackedWeight p = lrc::quantize_rtn(W.data(), d_out, d_in, s);
          std::vector<float> got(W.size());
          lrc::dequantize(p, d_out, d_in, got.data());
          const std::vector<float> want = naive_rtn(W, d_out, d_in, s);
          for (size_t i = 0; i < W.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 1e-6f) << "bits " << bits << " gs " << gs << " sym " << sym
                                                << " mse " << mse << " at " << i;
          for (int j = 0; j < d_in; ++j) ASSERT_EQ(got[5 * d_in + j], 0.f);
        }
}

TEST(QuantRtn, SymmetricCodesUseTheSignedRange) {
  // max|w| maps to 2^(b-1)-1; the most negative code -2^(b-1) is reachable with clipping off.
  const float w[4] = {-1.f, -0.5f, 0.5f, 1.f};
  const PackedWeight p = lrc::quantize_rtn(w, 1, 4, WeightQuantSpec{4, 0, true, false});
  EXPECT_FLOAT_EQ(p.scales[0], 1.f / 7.f);
  EXPECT_FLOAT_EQ(p.zeros[0], 8.f);
  EXPECT_EQ(lrc::unpack_code(p.codes.data(), 0, 4), 1);   // -7 + 8
  EXPECT_EQ(lrc::unpack_code(p.codes.data(), 3, 4), 15);  // +7 + 8
}

TEST(QuantRtn, MseClipNeverWorseThanNone) {
  const int d_out = 64, d_in = 128;
  std::vector<float> W = lrc::test::random_weight(d_out, d_in, 11);
  double total_clip = 0, total_none = 0;
  for (int bits : {3, 4})
    for (bool sym : {true, false}) {
      std::vector<float> a(W.size()), b(W.size());
      lrc::dequantize(lrc::quantize_rtn(W.data(), d_out, d_in, {bits, 32, sym, true}), d_out, d_in,
                      a.data());
      lrc::dequantize(lrc::quantize_rtn(W.data(), d_out, d_in, {bits, 32, sym, false}), d_out, d_in,
                      b.data());
      for (int r = 0; r < d_out; ++r)
        for (int g = 0; g < d_in; g += 32) {
          double ea = 0, eb = 0;
          for (int j = g; j < g + 32; ++j) {
            const size_t i = static_cast<size_t>(r) * d_in + j;
            ea += (W[i] - a[i]) * double(W[i] - a[i]);
            eb += (W[i] - b[i]) * double(W[i] - b[i]);
          }
          ASSERT_LE(ea, eb * (1 + 1e-12)) << "row " << r << " group " << g;
          total_clip += ea, total_none += eb;
        }
    }
  EXPECT_LT(total_clip, 0.95 * total_none);  // and it clips for real on Gaussian weights
}

TEST(QuantGptq, BeatsRtnOnCorrelatedData) {
  const int d_out = 96, d_in = 128;
  const std::vector<float> W = lrc::test::random_weight(d_out, d_in, 21);
  const std::vector<float> X = lrc::test::heavy_tailed_activations(2048, d_in, 22);
  lrc::StatsAccumulator acc(d_in, lrc::ActQuantSpec{});
  acc.add(X.data(), 2048);
  const lrc::LayerStats st = acc.finish();
  for (int gs : {0, 32})
    for (bool act_order : {false, true}) {
      const WeightQuantSpec s{4, gs, true, true};
      lrc::GptqOptions opt;
      opt.act_order = act_order;
      std::vector<float> wg(W.size()), wr(W.size());
      lrc::dequantize(lrc::gptq(W.data(), d_out, d_in, st.xx.data(), s, opt), d_out, d_in,
                      wg.data());
      lrc::dequantize(lrc::quantize_rtn(W.data(), d_out, d_in, s), d_out, d_in, wr.data());
      // ‖(W - Ŵ) X‖² (Y = X here).
      const double eg =
          lrc::lrc_objective(W.data(), wg.data(), nullptr, nullptr, 0, d_out, d_in, st);
      const double er =
          lrc::lrc_objective(W.data(), wr.data(), nullptr, nullptr, 0, d_out, d_in, st);
      EXPECT_LT(eg, 0.8 * er) << "groupsize " << gs << " act_order " << act_order;
    }
}

TEST(QuantGptq, DiagonalHessianReducesToRtn) {
  // With H = I nothing is propagated (H⁻¹ is diagonal): GPTQ is RTN column by column.
  const int d_out = 16, d_in = 48;
  const std::vector<float> W = lrc::test::random_weight(d_out, d_in, 5);
  std::vector<double> H(d_in * d_in, 0.0);
  for (int j = 0; j < d_in; ++j) H[j * d_in + j] = 1.0;
  for (int gs : {0, 16}) {
    const WeightQuantSpec s{4, gs, false, true};
    const PackedWeight g = lrc::gptq(W.data(), d_out, d_in, H.data(), s, lrc::GptqOptions{});
    const PackedWeight r = lrc::quantize_rtn(W.data(), d_out, d_in, s);
    EXPECT_EQ(g.codes, r.codes);
    EXPECT_EQ(g.scales, r.scales);
    EXPECT_EQ(g.zeros, r.zeros);
  }
}

TEST(QuantGptq, DeadColumnsQuantizeToZero) {
  const int d_out = 8, d_in = 32;
  const std::vector<float> W = lrc::test::random_weight(d_out, d_in, 8);
  std::vector<float> X = lrc::test::heavy_tailed_activations(256, d_in, 9);
  for (int i = 0; i < 256; ++i) X[i * d_in + 3] = X[i * d_in + 17] = 0.f;
  lrc::StatsAccumulator acc(d_in, lrc::ActQuantSpec{});
  acc.add(X.data(), 256);
  const lrc::LayerStats st = acc.finish();
  std::vector<float> wg(W.size());
  lrc::dequantize(lrc::gptq(W.data(), d_out, d_in, st.xx.data(), {4, 0, true, true}, {}), d_out,
                  d_in, wg.data());
  for (int r = 0; r < d_out; ++r) {
    EXPECT_EQ(wg[r * d_in + 3], 0.f);
    EXPECT_EQ(wg[r * d_in + 17], 0.f);
  }
  for (float v : wg) ASSERT_TRUE(std::isfinite(v));
}

TEST(QuantWeightSpec, BitsOutsideRangeThrow) {
  const std::vector<float> W = lrc::test::random_weight(4, 8, 1);
  std::vector<double> H(64, 0.0);
  for (int j = 0; j < 8; ++j) H[j * 8 + j] = 1.0;
  for (int bits : {0, 1, 9, 16}) {
    EXPECT_THROW(lrc::quantize_rtn(W.data(), 4, 8, {bits, 0, true, true}), lrc::Error);
    EXPECT_THROW(lrc::gptq(W.data(), 4, 8, H.data(), {bits, 0, true, true}, {}), lrc::Error);
  }
  EXPECT_THROW(lrc::quantize_rtn(W.data(), 4, 8, {4, 3, true, true}), lrc::Error);  // 3 ∤ 8
}

TEST(QuantWeightSpec, DequantizeChecksSizes) {
  const std::vector<float> W = lrc::test::random_weight(4, 8, 1);
  PackedWeight p = lrc::quantize_rtn(W.data(), 4, 8, {4, 0, true, true});
  std::vector<float> out(32);
  EXPECT_NO_THROW(lrc::dequantize(p, 4, 8, out.data()));
  EXPECT_THROW(lrc::dequantize(p, 5, 8, out.data()), lrc::Error);
  p.scales.pop_back();
  EXPECT_THROW(lrc::dequantize(p, 4, 8, out.data()), lrc::Error);
}

}  // namespace
