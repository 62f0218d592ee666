#include "lrc/kernels/rmsnorm.h"

#include <cmath>

namespace lrc {

void rmsnorm(const float* x, const float* weight, int64_t n, int d, float eps, float* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * d;
    float* yr = out + r * d;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / d + eps));
#pragma omp simd
    for (int j = 0; j < d; ++j) yr[j] = xr[j] * inv * weight[j];
  }
}

}  // namespace lrc
