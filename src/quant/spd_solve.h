// Symmetric positive definite systems through LAPACK's Cholesky (dpotrf / dpotrs): the
// solvers never form an explicit inverse when a solve will do.
#pragma once

#include <vector>

namespace lrc::quant_detail {

// Lower Cholesky factor L of the symmetric n x n row-major A (only its lower triangle is read),
// A = L Lᵀ; L is returned row-major with the strict upper triangle zeroed. Throws lrc::Error
// "<where>: <what> is not positive definite (...)" on failure (a FactorizationFailed, which
// the solvers retry with more damping: lrc/quant/damping.h).
std::vector<double> cholesky_lower(const double* A, int n, const char* where, const char* what);

// B := A⁻¹ B in place, B n x m row-major, given A's lower factor L from cholesky_lower.
void cholesky_solve(const double* L, int n, double* B, int m);

}  // namespace lrc::quant_detail
