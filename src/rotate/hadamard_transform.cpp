// Online randomised Hadamard rotation: x ↦ (H_m ⊗ H_{2^k})·diag(s)·x / √n for each row.
// The row is viewed as an m x 2^k matrix X: signs and scale first, then the fast Walsh–Hadamard
// transform along every row of X (H_{2^k}), then H_m along its columns. The 1/√n folded into the
// signs makes the whole thing orthogonal.
#include <cmath>

#include "lrc/core/error.h"
#include "lrc/rotate/online_transforms.h"
#include "rotate/hadamard_kernels.h"

namespace lrc {

HadamardTransform::HadamardTransform(const Rotation& r) : n_(r.n), m_(r.m) {
  if (r.kind != RotationKind::Hadamard) fail("HadamardTransform", "rotation is not a Hadamard one");
  const float inv_sqrt_n = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n_)));
  scaled_signs_.resize(n_);
  for (int i = 0; i < n_; ++i) scaled_signs_[i] = r.signs[i] * inv_sqrt_n;
  h_m_.assign(r.h_m.begin(), r.h_m.end());
}

void HadamardTransform::apply(float* x, int64_t n_rows) const {
  const int K = n_ / m_;
#pragma omp parallel if (n_rows * n_ >= (int64_t{1} << 16))
  {
    std::vector<float> tmp(m_ > 1 ? n_ : 0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n_rows; ++r)
      detail::hadamard_rotate_row(x + r * n_, scaled_signs_.data(), h_m_.data(), m_, K, tmp.data());
  }
}

std::string HadamardTransform::describe() const {
  return "hadamard(" + std::to_string(m_) + "x" + std::to_string(n_ / m_) + ")";
}

// (H_m ⊗ H_K)·diag(s/√n): A = H_m, Walsh along K.
OnlineTransformFactors HadamardTransform::factors() const {
  return {m_, n_ / m_ > 1, h_m_, scaled_signs_};
}

}  // namespace lrc
