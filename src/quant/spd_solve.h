// Symmetric positive definite systems through LAPACK's Cholesky (dpotrf / dpotrs): the
// solvers never form an explicit inverse when a solve will do.
#pragma once

#include <vector>

namespace lrc::quant_detail {

// Lower Cholesky factor L of A + ridge·I, A symmetric n x n row-major (only its lower triangle
// is read; the ridge spares the caller a d² copy of A), A + ridge·I = L Lᵀ; L is returned
// row-major with the strict upper triangle zeroed. Throws lrc::Error "<where>: <what> is not
// positive definite (...)" on failure (a FactorizationFailed, which the solvers retry with more
// damping: lrc/quant/damping.h).
std::vector<double> cholesky_lower(const double* A, int n, const char* where, const char* what,
                                   double ridge = 0.0);

// The n x n row-major a := aᵀ, in place.
void transpose_square(double* a, int n);

// The strict lower triangle of the n x n row-major a from its upper one (mirror_upper_to_lower)
// or the other way round: the array becomes symmetric in full storage.
void mirror_upper_to_lower(double* a, int n);
void mirror_lower_to_upper(double* a, int n);

// B := A⁻¹ B in place, B n x m row-major, given A's lower factor L from cholesky_lower.
void cholesky_solve(const double* L, int n, double* B, int m);

}  // namespace lrc::quant_detail
