// Online rotation by an explicit matrix (the fallback when n has no Hadamard order):
// X ← X·Rᵀ for a block of rows. sgemm when called from serial code; when the caller is already
// inside an OpenMP region (BLAS must not be called there) plain dot products.
#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "lrc/rotate/online_transforms.h"

namespace lrc {

DenseTransform::DenseTransform(const Rotation& r) : n_(r.n), what_(r.describe()) {
  const std::vector<double> d = r.dense();
  r_.assign(d.begin(), d.end());
}

void DenseTransform::apply(float* x, int64_t n_rows) const {
  const int n = n_;
  if (omp_in_parallel() || n_rows < 4) {
    std::vector<float> y(n);
    for (int64_t r = 0; r < n_rows; ++r) {
      float* xr = x + r * n;
      for (int i = 0; i < n; ++i) {
        const float* ri = r_.data() + static_cast<int64_t>(i) * n;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int j = 0; j < n; ++j) acc += ri[j] * xr[j];
        y[i] = acc;
      }
      std::copy(y.begin(), y.end(), xr);
    }
    return;
  }
  const int64_t block = std::max<int64_t>(4, (int64_t{1} << 22) / n);
  std::vector<float> y(static_cast<size_t>(std::min(block, n_rows)) * n);
  for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
    const int64_t rows = std::min(block, n_rows - r0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), n, n, 1.f,
                x + r0 * n, n, r_.data(), n, 0.f, y.data(), n);
    std::copy(y.begin(), y.begin() + rows * n, x + r0 * n);
  }
}

std::string DenseTransform::describe() const { return "dense:" + what_; }

// R itself: A = R, K = 1.
OnlineTransformFactors DenseTransform::factors() const { return {n_, false, r_, {}}; }

}  // namespace lrc
