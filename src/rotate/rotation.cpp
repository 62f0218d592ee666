// Seeded random rotations (lrc/rotate/rotation.h): construction, float64 application, dense form.
#include "lrc/rotate/rotation.h"

#include <cblas.h>
#include <lapacke.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lrc/core/error.h"
#include "lrc/rotate/hadamard.h"
#include "rotate/hadamard_kernels.h"
#include "rotate/seeded_random.h"

namespace lrc {

const char* rotation_kind_name(RotationKind k) {
  return k == RotationKind::Hadamard ? "hadamard" : "orthogonal";
}

RotationKind parse_rotation_kind(const std::string& s) {
  if (s == "hadamard") return RotationKind::Hadamard;
  if (s == "orthogonal") return RotationKind::Orthogonal;
  fail("rotation", "unknown rotation kind '" + s + "' (expected hadamard or orthogonal)");
}

namespace {

// Haar-random orthogonal matrix: QR of a Gaussian matrix with the sign ambiguity removed.
std::vector<double> random_orthogonal(int n, uint64_t seed) {
  detail::SplitMix64 rng(seed);
  // G is generated and factored column-major (LAPACK's native layout): G = Q·U.
  std::vector<double> g(static_cast<size_t>(n) * n);
  for (auto& v : g) v = rng.normal();
  std::vector<double> tau(n);
  if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, n, g.data(), n, tau.data()) != 0)
    fail("rotation", "QR factorisation failed for order " + std::to_string(n));
  std::vector<double> sign(n);
  for (int j = 0; j < n; ++j) sign[j] = g[static_cast<size_t>(j) * n + j] < 0 ? -1.0 : 1.0;
  if (LAPACKE_dorgqr(LAPACK_COL_MAJOR, n, n, n, g.data(), n, tau.data()) != 0)
    fail("rotation", "forming Q failed for order " + std::to_string(n));
  // Column j of Q (contiguous in column-major) times sign(U_jj): now diag(U) > 0, Q unique.
  // Read row-major, the same memory is Qᵀ, which is what we use as R (also Haar orthogonal).
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) g[static_cast<size_t>(j) * n + i] *= sign[j];
  return g;
}

}  // namespace

Rotation make_rotation(RotationKind kind, int n, uint64_t seed) {
  if (n < 1) fail("rotation", "order must be positive, got " + std::to_string(n));
  Rotation r;
  r.kind = kind;
  r.n = n;
  r.seed = seed;
  if (kind == RotationKind::Hadamard) {
    r.m = hadamard_base_order(n);
    if (r.m == 0) fail("rotation", "no Hadamard matrix of order " + std::to_string(n));
    r.h_m = hadamard_matrix(r.m);
    detail::SplitMix64 rng(seed);
    r.signs.resize(n);
    for (auto& s : r.signs) s = rng.sign();
  } else {
    r.q = random_orthogonal(n, seed);
  }
  return r;
}

Rotation make_rotation(int n, uint64_t seed) {
  return make_rotation(has_hadamard(n) ? RotationKind::Hadamard : RotationKind::Orthogonal, n,
                       seed);
}

void Rotation::apply(double* x, int64_t n_rows) const {
  if (n_rows <= 0) return;
  if (kind == RotationKind::Hadamard) {
    const int K = n / m;
    std::vector<double> scaled(n);
    const double inv_sqrt_n = 1.0 / std::sqrt(static_cast<double>(n));
    for (int i = 0; i < n; ++i) scaled[i] = signs[i] * inv_sqrt_n;
#pragma omp parallel if (n_rows > 1)
    {
      std::vector<double> tmp(n);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < n_rows; ++r)
        detail::hadamard_rotate_row(x + r * n, scaled.data(), h_m.data(), m, K, tmp.data());
    }
    return;
  }
  // Orthogonal: X ← X·Rᵀ, a block of rows at a time.
  if (omp_in_parallel()) fail("rotation", "orthogonal apply called inside an OpenMP region");
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 24) / n);
  std::vector<double> y(static_cast<size_t>(std::min(block, n_rows)) * n);
  for (int64_t r0 = 0; r0 < n_rows; r0 += block) {
    const int64_t rows = std::min(block, n_rows - r0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), n, n, 1.0,
                x + r0 * n, n, q.data(), n, 0.0, y.data(), n);
    std::copy(y.begin(), y.begin() + rows * n, x + r0 * n);
  }
}

std::vector<double> Rotation::dense() const {
  if (kind == RotationKind::Orthogonal) return q;
  // apply() turns row j of the identity, e_j, into R·e_j = column j of R; transpose that.
  std::vector<double> cols(static_cast<size_t>(n) * n, 0.0);
  for (int j = 0; j < n; ++j) cols[static_cast<size_t>(j) * n + j] = 1.0;
  apply(cols.data(), n);
  std::vector<double> out(cols.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      out[static_cast<size_t>(i) * n + j] = cols[static_cast<size_t>(j) * n + i];
  return out;
}

std::string Rotation::describe() const {
  if (kind == RotationKind::Orthogonal) return "orthogonal(" + std::to_string(n) + ")";
  return "hadamard(" + std::to_string(m) + "x" + std::to_string(n / m) + ")";
}

}  // namespace lrc
