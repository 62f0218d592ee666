// Paley's constructions (1933). Both start from the Jacobsthal matrix of GF(q):
//   Q[a][b] = χ(a - b),   a, b in GF(q),
// which satisfies Q·Qᵀ = q·I - J and Q·J = J·Q = 0 (J = all ones). Q is skew-symmetric when
// q ≡ 3 (mod 4) (χ(-1) = -1) and symmetric when q ≡ 1 (mod 4) (χ(-1) = +1).
#include "rotate/galois_field.h"
#include "rotate/hadamard_constructions.h"

namespace lrc::detail {

namespace {

// The (q+1) x (q+1) "conference" core  S = [[0, 1ᵀ], [s·1, Q]]  with s = -1 (Paley I, S skew)
// or s = +1 (Paley II, S symmetric). In both cases S·Sᵀ = q·I.
std::vector<int> conference_core(int q, int column_sign) {
  const GaloisField f(q);
  const int n = q + 1;
  std::vector<int> s(static_cast<size_t>(n) * n, 0);
  for (int j = 1; j < n; ++j) {
    s[j] = 1;                                     // first row: 0 1 1 ... 1
    s[static_cast<size_t>(j) * n] = column_sign;  // first column
  }
  for (int a = 0; a < q; ++a)
    for (int b = 0; b < q; ++b) s[static_cast<size_t>(a + 1) * n + (b + 1)] = f.chi(f.sub(a, b));
  return s;
}

}  // namespace

// Paley I: H = I + S with S skew and S·Sᵀ = q·I, so H·Hᵀ = I - S² = I + S·Sᵀ = (q+1)·I.
std::vector<int8_t> paley1(int q) {
  const int n = q + 1;
  const std::vector<int> s = conference_core(q, -1);
  std::vector<int8_t> h(s.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const size_t ij = static_cast<size_t>(i) * n + j;
      h[ij] = static_cast<int8_t>(s[ij] + (i == j ? 1 : 0));
    }
  return h;
}

// Paley II: with C the symmetric conference matrix (C·Cᵀ = q·I, zero diagonal),
//   H = C ⊗ [[1, 1], [1, -1]] + I ⊗ [[1, -1], [-1, -1]],
// every entry of C off the diagonal picks the first 2x2 block and the diagonal the second.
std::vector<int8_t> paley2(int q) {
  const int c = q + 1, n = 2 * c;
  const std::vector<int> s = conference_core(q, +1);
  std::vector<int8_t> h(static_cast<size_t>(n) * n);
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j) {
      const int v = s[static_cast<size_t>(i) * c + j];
      const int blk[2][2] = {{v, v}, {v, -v}};
      const int diag[2][2] = {{1, -1}, {-1, -1}};
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          h[static_cast<size_t>(2 * i + a) * n + (2 * j + b)] =
              static_cast<int8_t>(i == j ? diag[a][b] : blk[a][b]);
    }
  return h;
}

}  // namespace lrc::detail
