#include "quant/top_singular.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/damping.h"

namespace lrc::quant_detail {

namespace {

// Top-k eigenpairs of the symmetric n x n row-major G (upper triangle read, G destroyed):
// z [n x k] row-major and lambda [k], both in DESCENDING order of eigenvalue.
void top_eigenpairs(double* G, int n, int k, std::vector<double>& z, std::vector<double>& lambda) {
  z.assign(static_cast<size_t>(n) * k, 0.0);
  lambda.assign(k, 0.0);
  if (k == 0) return;
  std::vector<double> w(n);
  std::vector<double> zz(static_cast<size_t>(n) * k);
  std::vector<lapack_int> isuppz(2 * static_cast<size_t>(k));
  lapack_int m = 0;
  const double abstol = LAPACKE_dlamch('S');  // safe minimum: most accurate eigenvalues
  const lapack_int info =
      LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', n, G, n, 0.0, 0.0, n - k + 1, n, abstol, &m,
                     w.data(), zz.data(), k, isuppz.data());
  if (info != 0 || m != k)  // retried with more damping by the LRC solver (damping.h)
    throw FactorizationFailed("top eigenvectors: dsyevr failed (info " + std::to_string(info) +
                              ", found " + std::to_string(m) + " of " + std::to_string(k) + ")");
  // dsyevr returns ascending order; flip to descending.
  for (int j = 0; j < k; ++j) {
    lambda[j] = w[k - 1 - j];
    for (int i = 0; i < n; ++i)
      z[static_cast<size_t>(i) * k + j] = zz[static_cast<size_t>(i) * k + (k - 1 - j)];
  }
}

}  // namespace

TopEigen top_left_singular(const double* F, int rows, int cols, int k) {
  TopEigen out;
  out.k = k;
  out.u.assign(static_cast<size_t>(rows) * k, 0.0);
  out.lambda.assign(k, 0.0);
  if (k == 0) return out;
  if (k > rows)
    fail("top eigenvectors",
         "rank " + std::to_string(k) + " exceeds " + std::to_string(rows) + " rows");

  std::vector<double> z, lambda;
  int kept = 0;  // number of leading eigenpairs above the threshold
  if (rows <= cols) {
    // Σ = F Fᵀ (rows x rows), eigenvectors are U directly.
    std::vector<double> G(static_cast<size_t>(rows) * rows, 0.0);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, rows, cols, 1.0, F, cols, 0.0, G.data(),
                rows);
    top_eigenpairs(G.data(), rows, k, z, lambda);
    const double thr = 1e-12 * std::max(lambda[0], 0.0);
    for (int j = 0; j < k; ++j) {
      out.lambda[j] = std::max(lambda[j], 0.0);
      if (lambda[j] > thr && lambda[j] > 0) kept = j + 1;
    }
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < kept; ++j)
        out.u[static_cast<size_t>(i) * k + j] = z[static_cast<size_t>(i) * k + j];
    return out;
  }

  // rows > cols: the nonzero spectrum of F Fᵀ is that of FᵀF (cols x cols); at most cols of it.
  const int kc = std::min(k, cols);
  if (kc == 0) return out;
  std::vector<double> G(static_cast<size_t>(cols) * cols, 0.0);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0, F, cols, 0.0, G.data(), cols);
  top_eigenpairs(G.data(), cols, kc, z, lambda);
  const double thr = 1e-12 * std::max(lambda[0], 0.0);
  for (int j = 0; j < kc; ++j) {
    out.lambda[j] = std::max(lambda[j], 0.0);
    if (lambda[j] > thr && lambda[j] > 0) kept = j + 1;
  }
  if (kept == 0) return out;
  // U_kept = F Z_kept diag(1/sqrt(λ)), rows x kept.
  std::vector<double> uk(static_cast<size_t>(rows) * kept);
  std::vector<double> zk(static_cast<size_t>(cols) * kept);
  for (int i = 0; i < cols; ++i)
    for (int j = 0; j < kept; ++j)
      zk[static_cast<size_t>(i) * kept + j] =
          z[static_cast<size_t>(i) * kc + j] / std::sqrt(lambda[j]);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, kept, cols, 1.0, F, cols, zk.data(),
              kept, 0.0, uk.data(), kept);
  // Re-orthonormalise: Q R = U_kept keeps the nested spans span(u_1..u_j); flip signs so that
  // diag(R) > 0, i.e. q_j stays aligned with u_j.
  std::vector<double> tau(kept);
  lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, kept, uk.data(), kept, tau.data());
  if (info != 0) fail("top eigenvectors", "dgeqrf failed (info " + std::to_string(info) + ")");
  std::vector<double> rdiag(kept);
  for (int j = 0; j < kept; ++j) rdiag[j] = uk[static_cast<size_t>(j) * kept + j];
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, kept, kept, uk.data(), kept, tau.data());
  if (info != 0) fail("top eigenvectors", "dorgqr failed (info " + std::to_string(info) + ")");
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < kept; ++j)
      out.u[static_cast<size_t>(i) * k + j] =
          (rdiag[j] < 0 ? -1.0 : 1.0) * uk[static_cast<size_t>(i) * kept + j];
  return out;
}

}  // namespace lrc::quant_detail
