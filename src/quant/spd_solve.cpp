#include "quant/spd_solve.h"

#include <lapacke.h>

#include <string>

#include "lrc/core/error.h"
#include "lrc/quant/damping.h"

namespace lrc::quant_detail {

std::vector<double> cholesky_lower(const double* A, int n, const char* where, const char* what) {
  std::vector<double> L(A, A + static_cast<size_t>(n) * n);
  const lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, L.data(), n);
  if (info > 0)  // retried with more damping by the callers (damping.h)
    throw FactorizationFailed(std::string(where) + ": " + what +
                              " is not positive definite (Cholesky failed at leading minor " +
                              std::to_string(info) + " of " + std::to_string(n) +
                              "); increase the regularisation");
  if (info < 0) fail(where, std::string(what) + ": dpotrf argument " + std::to_string(-info));
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) L[static_cast<size_t>(i) * n + j] = 0.0;
  return L;
}

void cholesky_solve(const double* L, int n, double* B, int m) {
  const lapack_int info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', n, m, L, n, B, m);
  if (info != 0) fail("cholesky_solve", "dpotrs argument " + std::to_string(-info));
}

}  // namespace lrc::quant_detail
