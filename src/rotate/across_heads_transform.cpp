// Online rotation across attention heads: a row of the attention output, n_heads·head_dim long,
// is the matrix X [n_heads x head_dim] (head h in row h); it becomes R·X, i.e. x ↦ (R ⊗ I)·x,
// R of order n_heads (randomised Hadamard or orthogonal). With a head-wise H_hd fused into
// v_proj, o_proj sees (R ⊗ H_hd)·x — a rotation of the full width at O(n_heads) cost per value.
#include "lrc/core/error.h"
#include "lrc/rotate/online_transforms.h"
#include "rotate/hadamard_kernels.h"

namespace lrc {

AcrossHeadsTransform::AcrossHeadsTransform(const Rotation& r, int head_dim)
    : n_heads_(r.n), head_dim_(head_dim), what_(r.describe()) {
  if (head_dim < 1) fail("AcrossHeadsTransform", "head_dim must be positive");
  const std::vector<double> d = r.dense();
  r_.assign(d.begin(), d.end());
}

void AcrossHeadsTransform::apply(float* x, int64_t n_rows) const {
  const int n = n_heads_ * head_dim_;
#pragma omp parallel if (n_rows * n >= (int64_t{1} << 16))
  {
    std::vector<float> y(n);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n_rows; ++r) {
      float* xr = x + r * n;
      detail::mix_leading_axis(r_.data(), n_heads_, xr, head_dim_, y.data());
      for (int i = 0; i < n; ++i) xr[i] = y[i];
    }
  }
}

std::string AcrossHeadsTransform::describe() const {
  return "heads:" + what_ + "x" + std::to_string(head_dim_);
}

// R ⊗ I_head_dim: A = R, no Walsh.
OnlineTransformFactors AcrossHeadsTransform::factors() const {
  return {n_heads_, false, r_, {}};
}

}  // namespace lrc
