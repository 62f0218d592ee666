// KV-cache quantization: every value comes back within half a quantization step, the grid has
// 2^bits levels, zero stays exactly zero, and clipping shrinks the range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "lrc/kernels/kv_quant.h"

TEST(ModelKvQuant, WithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.3f, 2.f);
  const int rows = 50, hd = 64;
  for (int bits : {2, 3, 4, 8}) {
    std::vector<float> x(rows * hd);
    for (auto& v : x) v = nd(rng);
    auto y = x;
    lrc::kv_quantize(y.data(), rows, hd, {bits, 1.0f});
    const double maxq = (1 << bits) - 1;
    for (int r = 0; r < rows; ++r) {
      const float* xr = x.data() + r * hd;
      const double lo = std::min(0.f, *std::min_element(xr, xr + hd));
      const double hi = std::max(0.f, *std::max_element(xr, xr + hd));
      const double step = (hi - lo) / maxq;
      std::set<float> levels;
      for (int j = 0; j < hd; ++j) {
        EXPECT_LE(std::fabs(double(y[r * hd + j]) - xr[j]), step / 2 * (1 + 1e-5) + 1e-7)
            << "bits " << bits << " row " << r;
        levels.insert(y[r * hd + j]);
      }
      EXPECT_LE(levels.size(), static_cast<size_t>(maxq + 1));
    }
  }
}

TEST(ModelKvQuant, ZeroRowAndZeroValueExact) {
  std::vector<float> x(16, 0.f);
  lrc::kv_quantize(x.data(), 1, 16, {4, 1.0f});
  for (float v : x) EXPECT_EQ(v, 0.f);
  std::vector<float> y = {0.f, 1.f, -3.f, 2.5f};
  lrc::kv_quantize(y.data(), 1, 4, {4, 1.0f});
  EXPECT_EQ(y[0], 0.f);  // 0 lies on the grid (zero point is an integer code)
}

TEST(ModelKvQuant, ClipLimitsRange) {
  std::vector<float> x = {-4.f, -1.f, 0.5f, 4.f};
  lrc::kv_quantize(x.data(), 1, 4, {4, 0.5f});
  // Range [-2, 2]; the integer zero point may shift the grid by up to half a step.
  const float step = 4.f / 15.f;
  for (float v : x) EXPECT_LE(std::fabs(v), 2.f + step / 2 + 1e-5f);
  EXPECT_NEAR(x[2], 0.5f, step / 2 + 1e-6f);
}

TEST(ModelKvQuant, OffIsIdentity) {
  std::vector<float> x = {1.234f, -5.678f};
  auto y = x;
  lrc::kv_quantize(y.data(), 1, 2, {});
  EXPECT_EQ(x, y);
}
