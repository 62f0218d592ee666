// Targets from the FP model (beyond the paper; `lrc quantize --target fp`).
//
// The paper calibrates layer l on X, its input in the model whose layers before l are
// already quantized, and asks Ŵ Q_a(X) + U Vᵀ X to reproduce W X (eq. 2). The error the
// earlier layers left in X is then taken as given. With X̄ the FP model's input for the same
// tokens, the target W X̄ asks layer l to undo what it can of that error too (as GPTAQ does for
// GPTQ). The part of W X̄ that any weight acting on X can reach is its least-squares
// projection on X's rows, W_t X with
//
//   W_t = argmin_W' ‖W X̄ − W' X‖² + ridge = W (X̄Xᵀ + εx I) (XXᵀ + εx I)⁻¹,
//
// the ridge being εx I of virtual samples present in both X̄ and X (so X̄ = X gives W_t = W
// exactly, as the consistent ridge of lrc_solver.h does for Σxy). Every method then runs
// unchanged on W_t in place of W: ‖W X̄ − Ŵ Y − U Vᵀ X‖² = ‖W X̄ − W_t X‖² (constant)
// + ‖W_t X − Ŵ Y − U Vᵀ X‖² + 2⟨W X̄ − W_t X, −Ŵ (Y − X)⟩, whose last term (the projection
// residual against the activation rounding noise) is the one part left out.
//
// A mix α in [0, 1] targets W ((1 − α) X + α X̄) instead, whose projection is
// (1 − α) W + α W_t: α = 0 is the paper's target, α = 1 the FP model's. Measured on SmolLM2
// at W4A4, α = 1 makes GPTQ and LRC worse, α = 0.25 makes LRC better (docs/results.md,
// "FP-model targets"); on the 22M model α = 1 helps both.
#pragma once

#include <vector>

#include "lrc/quant/damping.h"
#include "lrc/quant/stats.h"

namespace lrc {

// (1 − mix) W + mix W_t [d_out x d_in] from W and stats (which must carry fx = X̄Xᵀ);
// εx = eps_rel · tr(XXᵀ)/d_in as in regularized_covariances. Throws lrc::Error naming `where`
// when fx is missing. When XXᵀ + εx I does not factor, eps_rel is raised ×10 (damping.h) and the
// value used recorded in *log (or printed on stderr when log is null).
std::vector<float> fp_target_weights(const float* W, int d_out, int d_in, const LayerStats& stats,
                                     double eps_rel, const char* where, double mix = 1.0,
                                     DampingLog* log = nullptr);

}  // namespace lrc
