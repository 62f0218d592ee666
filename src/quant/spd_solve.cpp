#include "quant/spd_solve.h"

#include <lapacke.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "lrc/core/error.h"
#include "lrc/quant/damping.h"
#include "core/parallel_threshold.h"

namespace lrc::quant_detail {

namespace {

// Visits each pair (i, j), j < i, of the n x n row-major a once, in 64 x 64 tiles of both
// triangles (cache-friendly at d = 14336), on every core.
template <class F>
void for_each_lower_pair(double* a, int n, F f) {
  constexpr int kTile = 64;
#pragma omp parallel for schedule(dynamic) if (static_cast<int64_t>(n) * n >= kMinParallelWork)
  for (int i0 = 0; i0 < n; i0 += kTile)
    for (int j0 = 0; j0 <= i0; j0 += kTile)
      for (int i = i0; i < std::min(i0 + kTile, n); ++i)
        for (int j = j0; j < std::min(j0 + kTile, i0 == j0 ? i : n); ++j)
          f(a[static_cast<size_t>(i) * n + j], a[static_cast<size_t>(j) * n + i]);
}

}  // namespace

void transpose_square(double* a, int n) {
  for_each_lower_pair(a, n, [](double& lo, double& up) { std::swap(lo, up); });
}

void mirror_upper_to_lower(double* a, int n) {
  for_each_lower_pair(a, n, [](double& lo, double& up) { lo = up; });
}

void mirror_lower_to_upper(double* a, int n) {
  for_each_lower_pair(a, n, [](double& lo, double& up) { up = lo; });
}

std::vector<double> cholesky_lower(const double* A, int n, const char* where, const char* what,
                                   double ridge) {
  // The lower triangle (plus the ridge) copied to both triangles: symmetric in full storage,
  // the row-major array is also the column-major one, so dpotrf runs column-major in place
  // (LAPACKE's row-major call would transpose a second d² copy) and leaves Lᵀ, bit for bit
  // the row-major call's L, transposed.
  std::vector<double> L(A, A + static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i) L[static_cast<size_t>(i) * n + i] += ridge;
  mirror_lower_to_upper(L.data(), n);
  const lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, L.data(), n);
  if (info > 0)  // retried with more damping by the callers (damping.h)
    throw FactorizationFailed(std::string(where) + ": " + what +
                              " is not positive definite (Cholesky failed at leading minor " +
                              std::to_string(info) + " of " + std::to_string(n) +
                              "); increase the regularisation");
  if (info < 0) fail(where, std::string(what) + ": dpotrf argument " + std::to_string(-info));
  transpose_square(L.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) L[static_cast<size_t>(i) * n + j] = 0.0;
  return L;
}

void cholesky_solve(const double* L, int n, double* B, int m) {
  const lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', n, m, L, n, B, m);
  if (info != 0) fail("cholesky_solve", "dpotrs argument " + std::to_string(-info));
}

}  // namespace lrc::quant_detail
