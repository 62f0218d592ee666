// Seeded random rotations: the orthogonal matrices QuaRot multiplies into weights and
// activations. Convention everywhere in lrc: a rotation R acts on an activation row x as
// x ↦ R·x; the weight W that reads x is fused as W·Rᵀ (so (W·Rᵀ)(R·x) = W·x) and a weight that
// writes x is fused as R·W. This matches lrc::OnlineTransform.
//
//   Hadamard:   R = (H_m ⊗ H_{2^k}) · diag(s) / √n,  n = m·2^k, m = hadamard_base_order(n),
//               s_i = ±1 drawn from the seed. Applied in O(n log n + n·m) per row.
//   Orthogonal: R from the QR factorisation of an n x n standard Gaussian matrix G = Q·U with
//               the columns of Q signed so that diag(U) > 0 — Haar distributed and unique for a
//               seed. The fallback for sizes with no Hadamard order. Applied in O(n²) per row.
//
// Both are deterministic functions of (kind, n, seed): a checkpoint stores those three numbers
// and recreates the same rotation (lrc/rotate/online_transforms.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrc {

enum class RotationKind { Hadamard, Orthogonal };

const char* rotation_kind_name(RotationKind k);  // "hadamard", "orthogonal"
RotationKind parse_rotation_kind(const std::string& s);

struct Rotation {
  RotationKind kind = RotationKind::Hadamard;
  int n = 0;
  uint64_t seed = 0;
  // Hadamard: base order m, H_m row-major [m x m] (±1) and the signs s [n] (±1).
  int m = 0;
  std::vector<int8_t> h_m;
  std::vector<int8_t> signs;
  // Orthogonal: R row-major [n x n].
  std::vector<double> q;

  // Rows of x [n_rows x n] become R·x, in float64 (the exact path used to fuse weights).
  // Uses BLAS for the orthogonal kind: do not call from inside an OpenMP parallel region.
  void apply(double* x, int64_t n_rows) const;

  // R as a dense row-major [n x n] matrix.
  std::vector<double> dense() const;

  std::string describe() const;  // e.g. "hadamard(12x128)", "orthogonal(56)"
};

// Hadamard when has_hadamard(n), else orthogonal.
Rotation make_rotation(int n, uint64_t seed);

// Exactly the given kind; fails (lrc::Error) for Hadamard when n has no Hadamard order.
Rotation make_rotation(RotationKind kind, int n, uint64_t seed);

}  // namespace lrc
