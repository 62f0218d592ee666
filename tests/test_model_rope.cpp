// RoPE layouts: an Interleaved model and the HalfSplit model whose q/k rows are permuted per
// head (HF's conversion of llama checkpoints) compute the same logits; positions rotate by the
// expected angle.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lrc/model/forward.h"
#include "lrc/kernels/rope.h"
#include "support/random_model.h"

namespace {

// Rows of each head reordered so that feature pairs (2i, 2i+1) become (i, i + hd/2).
void interleaved_to_half_split(lrc::Linear& L, int n_heads, int hd) {
  const auto w = L.w;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < hd / 2; ++i)
      for (int half = 0; half < 2; ++half) {
        const int dst = h * hd + i + half * hd / 2, src = h * hd + 2 * i + half;
        std::copy_n(w.begin() + src * L.d_in, L.d_in, L.w.begin() + dst * L.d_in);
      }
}

}  // namespace

TEST(ModelRope, HalfSplitEqualsInterleavedWithPermutedRows) {
  auto cfg = lrc::test::tiny_config(64, 96, 2, 4, 2, 97, 64);
  cfg.rope = lrc::RopeStyle::Interleaved;
  const auto a = lrc::test::random_model(cfg, 21);
  auto b = a;
  b.cfg.rope = lrc::RopeStyle::HalfSplit;
  for (auto& L : b.layers) {
    interleaved_to_half_split(L.wq, cfg.n_heads, cfg.head_dim());
    interleaved_to_half_split(L.wk, cfg.n_kv_heads, cfg.head_dim());
  }
  std::mt19937 rng(2);
  std::vector<int32_t> toks(40);
  for (auto& t : toks) t = static_cast<int32_t>(rng() % cfg.vocab_size);
  const auto la = lrc::forward_logits(a, toks.data(), 2, 20);
  const auto lb = lrc::forward_logits(b, toks.data(), 2, 20);
  double worst = 0, spread = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    worst = std::max(worst, double(std::fabs(la[i] - lb[i])));
    spread = std::max(spread, double(std::fabs(la[i])));
  }
  EXPECT_LT(worst, 1e-4);
  // and the styles do differ when the rows are NOT permuted (the test has teeth)
  auto c = a;
  c.cfg.rope = lrc::RopeStyle::HalfSplit;
  const auto lc = lrc::forward_logits(c, toks.data(), 2, 20);
  double diff = 0;
  for (size_t i = 0; i < la.size(); ++i) diff = std::max(diff, double(std::fabs(la[i] - lc[i])));
  EXPECT_GT(diff, 1e-2);
}

TEST(ModelRope, RotatesPairsByPositionAngle) {
  const int hd = 8, pos = 7;
  const float theta = 10000.f;
  const lrc::RopeTable t(hd, theta, pos, 1);
  for (auto style : {lrc::RopeStyle::HalfSplit, lrc::RopeStyle::Interleaved}) {
    for (int i = 0; i < hd / 2; ++i) {
      std::vector<float> x(hd, 0.f);
      const int p0 = style == lrc::RopeStyle::HalfSplit ? i : 2 * i;
      const int p1 = style == lrc::RopeStyle::HalfSplit ? i + hd / 2 : 2 * i + 1;
      x[p0] = 1.f;  // unit vector on the pair's first axis -> (cos a, sin a)
      lrc::apply_rope(x.data(), 1, 1, hd, style, t, 1);
      const double a = pos * std::pow(double(theta), -2.0 * i / hd);
      EXPECT_NEAR(x[p0], std::cos(a), 1e-6);
      EXPECT_NEAR(x[p1], std::sin(a), 1e-6);
      double norm = 0;
      for (float v : x) norm += double(v) * v;
      EXPECT_NEAR(norm, 1.0, 1e-6);
    }
  }
}

// The shared table is the table a fresh RopeTable gives, made once per (shape, θ, positions,
// scaling): the same object for the same request, another for any other scaling or window.
TEST(ModelRope, SharedTableIsTheFreshTableMadeOnce) {
  lrc::RopeScaling l3;
  l3.kind = lrc::RopeScaling::Kind::Llama3;
  l3.factor = 8.f;
  l3.original = 64;
  const auto a = lrc::shared_rope_table(32, 10000.f, 3, 200);
  const auto b = lrc::shared_rope_table(32, 10000.f, 3, 200);
  const auto c = lrc::shared_rope_table(32, 10000.f, 3, 200, &l3);
  const auto d = lrc::shared_rope_table(32, 10000.f, 4, 200);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_NE(a.get(), d.get());
  EXPECT_EQ(c.get(), lrc::shared_rope_table(32, 10000.f, 3, 200, &l3).get());
  const lrc::RopeTable fa(32, 10000.f, 3, 200), fc(32, 10000.f, 3, 200, &l3);
  EXPECT_EQ(a->cos, fa.cos);
  EXPECT_EQ(a->sin, fa.sin);
  EXPECT_EQ(c->cos, fc.cos);
  EXPECT_NE(c->cos, fa.cos);
  EXPECT_TRUE(c->scaled);
  // An unscaled angle: position 3 + 5, pair 7.
  const double f = std::pow(10000.0, -2.0 * 7 / 32);
  EXPECT_FLOAT_EQ(a->cos[5 * 16 + 7], static_cast<float>(std::cos(8 * f)));
}
