// fast_expf against std::exp in float64 over the whole useful range.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "lrc/core/fast_exp.h"

TEST(CoreFastExp, RelativeErrorWithinFewUlp) {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.3f + 175.6f * static_cast<float>(i) / 2000000.f;
    const double ref = std::exp(static_cast<double>(x));
    const double rel = std::fabs(lrc::fast_expf(x) - ref) / ref;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 4 * 1.19e-7);  // a few ulp (float epsilon 2^-23)
  std::printf("worst relative error %.3g\n", worst);
}

TEST(CoreFastExp, EdgesAreFinite) {
  EXPECT_EQ(lrc::fast_expf(0.f), 1.f);
  EXPECT_EQ(lrc::fast_expf(-1000.f), 0.f);
  EXPECT_TRUE(std::isfinite(lrc::fast_expf(1000.f)));
  EXPECT_GT(lrc::fast_expf(88.5f), 2e38f);
  EXPECT_NEAR(lrc::fast_expf(-80.f), std::exp(-80.0), 1e-6 * std::exp(-80.0));
}

TEST(CoreFastExp, VectorLoopMatchesScalar) {
  std::vector<float> x(1000), y(1000);
  for (int i = 0; i < 1000; ++i) x[i] = -50.f + 0.1f * i;
#pragma omp simd
  for (int i = 0; i < 1000; ++i) y[i] = lrc::fast_expf(x[i]);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(y[i], lrc::fast_expf(x[i]));
}
