// Small dense float64 linear algebra for brute-force references in the quantization tests.
// Matrices are row-major std::vector<double> with explicit shapes; clarity over speed.
#pragma once

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace lrc::test {

using Mat = std::vector<double>;

inline Mat matmul(const Mat& a, const Mat& b, int m, int k, int n) {  // [m x k][k x n]
  Mat c(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p) {
      const double aip = a[static_cast<size_t>(i) * k + p];
      for (int j = 0; j < n; ++j)
        c[static_cast<size_t>(i) * n + j] += aip * b[static_cast<size_t>(p) * n + j];
    }
  return c;
}

inline Mat transpose(const Mat& a, int m, int n) {
  Mat t(a.size());
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      t[static_cast<size_t>(j) * m + i] = a[static_cast<size_t>(i) * n + j];
  return t;
}

inline Mat sub(Mat a, const Mat& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return a;
}

inline double sumsq(const Mat& a) {
  double s = 0;
  for (double v : a) s += v * v;
  return s;
}

inline double max_abs_diff(const Mat& a, const Mat& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline double max_abs(const Mat& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// Thin SVD a = U diag(s) Vᵀ of an m x n matrix: u [m x r], s [r], vt [r x n], r = min(m, n).
struct Svd {
  Mat u, s, vt;
  int r = 0;
};
inline Svd svd(const Mat& a, int m, int n) {
  Svd out;
  out.r = std::min(m, n);
  Mat w(a);
  out.u.resize(static_cast<size_t>(m) * out.r);
  out.s.resize(out.r);
  out.vt.resize(static_cast<size_t>(out.r) * n);
  Mat superb(std::max(1, out.r));
  if (LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, w.data(), n, out.s.data(), out.u.data(),
                     out.r, out.vt.data(), n, superb.data()) != 0)
    throw std::runtime_error("dgesvd failed");
  return out;
}

// Moore-Penrose pseudo-inverse [n x m] of an m x n matrix (singular values below rtol·s_max
// are treated as zero).
inline Mat pinv(const Mat& a, int m, int n, double rtol = 1e-13) {
  const Svd d = svd(a, m, n);
  Mat p(static_cast<size_t>(n) * m, 0.0);
  for (int k = 0; k < d.r; ++k) {
    if (d.s[k] <= rtol * d.s[0]) continue;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j)
        p[static_cast<size_t>(i) * m + j] +=
            d.vt[static_cast<size_t>(k) * n + i] * d.u[static_cast<size_t>(j) * d.r + k] / d.s[k];
  }
  return p;
}

// Best rank-k approximation (Eckart-Young) of an m x n matrix.
inline Mat truncate_rank(const Mat& a, int m, int n, int k) {
  const Svd d = svd(a, m, n);
  Mat out(static_cast<size_t>(m) * n, 0.0);
  for (int p = 0; p < k && p < d.r; ++p)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j)
        out[static_cast<size_t>(i) * n + j] +=
            d.u[static_cast<size_t>(i) * d.r + p] * d.s[p] * d.vt[static_cast<size_t>(p) * n + j];
  return out;
}

// Sum of the squared singular values beyond the first k.
inline double tail_energy(const Mat& a, int m, int n, int k) {
  const Svd d = svd(a, m, n);
  double s = 0;
  for (int p = k; p < d.r; ++p) s += d.s[p] * d.s[p];
  return s;
}

}  // namespace lrc::test
