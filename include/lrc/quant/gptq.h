// GPTQ (Frantar et al., 2022; paper Appendix A): greedy column-by-column quantization of W
// minimising ‖(W - Ŵ) Z‖² = tr((W - Ŵ) H (W - Ŵ)ᵀ) for a Hessian H = Z Zᵀ (d_in x d_in).
// Standard blocked form as in the reference implementation:
//   * dead columns (H_jj == 0): H_jj := 1 and W[:, j] := 0;
//   * damping: H += damp * mean(diag H) * I;
//   * R := upper Cholesky factor of H⁻¹ (H⁻¹ = RᵀR), computed from H's Cholesky (dpotri);
//   * columns in blocks of `block`: quantize column j, spread its error over the remaining
//     columns of the block with row j of R, then update the columns after the block with one
//     dgemm (lazy batch update);
//   * act_order: process columns by decreasing H_jj;
//   * groups: per-row (scale, zero) of each group of `groupsize` columns is chosen when the
//     sweep reaches the group's first column, from the weights updated so far (as the
//     reference does). With act_order the groups stay contiguous in the ORIGINAL column order
//     (PackedWeight has no column permutation), so their grids are fixed up front from W, like
//     the reference's static_groups option.
//
// Who passes which H:
//   * plain GPTQ (the QuaRot baseline): H = XXᵀ (LayerStats::xx);
//   * LRC's Update-Quant (Alg. 2): H = Σy = YYᵀ + ε_y I with target W̃ (lrc_solver.h);
//   * the SVD baseline: H = XXᵀ, then the SVD of W - Ŵ (svd_baseline.h).
#pragma once

#include "lrc/format/linear.h"
#include "lrc/quant/damping.h"
#include "lrc/quant/weight_quant.h"

namespace lrc {

struct GptqOptions {
  int block = 128;     // columns per lazy-update block
  double damp = 0.01;  // fraction of mean(diag H) added to the diagonal
  bool act_order = false;
  // Where a raised damping is recorded (damping.h: ×10 while H's Cholesky fails), or null
  // (then printed on stderr).
  DampingLog* log = nullptr;
};

// W: [d_out x d_in] row-major; H: [d_in x d_in] row-major symmetric (full storage).
// Both must be finite. When H + damping is not positive definite the damping is raised ×10 (at
// most kDampingRetries times, damping.h), then FactorizationFailed (an lrc::Error) is thrown.
PackedWeight gptq(const float* W, int d_out, int d_in, const double* H, const WeightQuantSpec& spec,
                  const GptqOptions& opt);
// The same on H + ridge·I (ridge >= 0) without a copy of H: LRC's Update-Quant, H = Σy = YYᵀ +
// ε_y I from the statistics themselves. Bit for bit gptq() on the ridged copy.
PackedWeight gptq_ridged(const float* W, int d_out, int d_in, const double* H, double ridge,
                         const WeightQuantSpec& spec, const GptqOptions& opt);

}  // namespace lrc
