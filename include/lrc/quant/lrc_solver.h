// LRC (paper Algorithm 1): jointly find a quantized Ŵ and a full-precision rank-k correction
// U Vᵀ minimising eq. 2,  ‖WX - Ŵ Q_a(X) - UVᵀX‖²,  from the statistics of X alone.
//
//   Σx, Σy, Σxy   <- regularised statistics                          (Alg. 1 lines 3-5)
//   U, V          <- Init-LR: closed form of the relaxed problem     (eq. 7, Prop. 3.4, Alg. 4)
//   repeat T times:
//     W̃ = (W - UVᵀ) Σxy Σy⁻¹;  Ŵ = GPTQ(W̃, H = Σy)  (or RTN)      (eq. 5, Prop. 3.1, Alg. 2)
//     U, V          <- Update-LR: closed form given Ŵ                 (eq. 6, Prop. 3.3, Alg. 3)
//
// Regularisation (docs/design-regularization.md). ε_x = eps_rel·tr(XXᵀ)/d_in and likewise ε_y
// (if X is identically zero the trace is replaced by d_in, i.e. ε = eps_rel).
//   Paper:      Σx = XXᵀ + ε_x I, Σy = YYᵀ + ε_y I, Σxy = XYᵀ.
//   Consistent: the same, plus Σxy += sqrt(ε_x ε_y) I.
// Both are the exact Gram matrices of augmented data, X̄ = [X, √ε_x I, 0], Ȳ = [Y, 0, √ε_y I]
// (Paper) or X̄ = [X, √ε_x I], Ȳ = [Y, √ε_y I] (Consistent), so every closed-form step below is
// the exact minimiser of ‖W X̄ - Ŵ Ȳ - UVᵀ X̄‖² (and needs no full-rank assumption on X or Y).
//
// Eigenvectors: only the top k, through LAPACKE_dsyevr with an index range. Σ is always formed
// as F Fᵀ for an explicit factor F (d_out x m, m <= d_in); when d_out > m the k x k problem is
// solved on the smaller Gram FᵀF instead and U = F z / sqrt(λ). Directions whose eigenvalue is
// <= 1e-12 · λ_max (or exactly 0) reduce the objective by nothing and come back as zero columns
// of U and V, so a rank-deficient Σ never produces NaN.
#pragma once

#include <vector>

#include "lrc/format/low_rank.h"
#include "lrc/format/packed_weight.h"
#include "lrc/quant/gptq.h"
#include "lrc/quant/stats.h"
#include "lrc/quant/weight_quant.h"

namespace lrc {

enum class LrcRegularization { Paper, Consistent };

struct LrcOptions {
  int rank = 0;   // k, 0 <= k <= min(d_in, d_out)
  int iters = 1;  // T >= 1
  WeightQuantSpec w;
  bool use_gptq = true;  // false = RTN in Update-Quant
  GptqOptions gptq;
  LrcRegularization reg = LrcRegularization::Consistent;  // Paper = the publication's ridge
  double eps_rel = 1e-2;
  // > rank: the last Update-LR also returns Σ's eigenvalues up to this many (capped at
  // min(d_in, d_out)), for rank allocation (rank_allocation.h); U, V keep `rank` columns.
  int spectrum_rank = 0;
  // false: skip the final eq. 2 evaluation (LowRankQuantized::objective = -1), for callers that
  // evaluate it themselves (the pipeline does, after rounding U, V to fp16).
  bool compute_objective = true;
  // If set, the seconds spent in Update-Quant's GPTQ are added here (the pipeline's report).
  double* gptq_seconds = nullptr;
  // A raised eps_rel is recorded here (damping.h: the whole of Algorithm 1 is rerun with eps_rel
  // ×10 while a factorisation of Σx, Σy or an eigen-solve fails), or null (printed on stderr).
  // Update-Quant's GPTQ logs its own damping in gptq.log.
  DampingLog* log = nullptr;
};

// Ŵ and U Vᵀ (the LowRankPair base: rank, u [d_out x k], v [d_in x k]).
struct LowRankQuantized : LowRankPair {
  PackedWeight packed;
  std::vector<float> w_hat;         // dequantized Ŵ, d_out x d_in
  std::vector<double> eigenvalues;  // of the last Update-LR Σ, descending: the top
                                    // max(rank, spectrum_rank)
  double objective = 0;             // eq. 2 from the (unregularised) statistics;
                                    // -1 when !compute_objective
};

LowRankQuantized lrc_quantize(const float* W, int d_out, int d_in, const LayerStats& stats,
                              const LrcOptions& opt);

// ---- The individual steps, exposed for tests and experiments. All in float64. ----

// Σx, Σy, Σxy (d x d row-major, full storage) and the ε used.
struct LrcCovariances {
  int d = 0;
  double eps_x = 0, eps_y = 0;
  std::vector<double> sx, sy, sxy;
};
LrcCovariances regularized_covariances(const LayerStats& stats, LrcRegularization reg,
                                       double eps_rel);
// The ridge ε = eps_rel · tr(G)/d of a d x d Gram matrix G (row-major; paper §3.2); an
// all-zero G uses tr = d, so that ε = eps_rel.
double ridge_epsilon(const std::vector<double>& gram, int d, double eps_rel);
// The same from the diagonal of the Gram matrix alone ([d]), bit for bit.
double ridge_epsilon_from_diagonal(const std::vector<double>& diag, double eps_rel);

// A rank-k correction in float64 while the solver iterates (the LowRank base: rank,
// u [d_out x k], v [d_in x k], row-major) and Σ's top-k eigenvalues.
struct LowRankFactors : LowRank<double> {
  std::vector<double> eigenvalues;
};

// Alg. 4 (Prop. 3.4): U = eig_k(W M Wᵀ), V = WᵀU, M = Σx - Σxy Σy⁻¹ Σyx (the Schur complement
// of the joint Gram, factored by pivoted Cholesky). Solves eq. 7 exactly. When M is zero to
// rounding (no activation quantization: Y = X, consistent ridge) every U solves eq. 7; then
// U = eig_k(W Σx Wᵀ), the best rank-k approximation of W in the data's metric.
LowRankFactors init_lr(const float* W, int d_out, int d_in, const LrcCovariances& cov, int k);

// Eq. 7's optimal value (Prop. 3.4): the eq. 2 objective (of the augmented data, i.e. with
// the ridge of cov) when Ŵ is unconstrained, tr(W M Wᵀ) - sum of the top k eigenvalues of
// W M Wᵀ. What LRC could reach with a perfect weight quantizer (used to search Q_a's clip).
double relaxed_objective(const float* W, int d_out, int d_in, const LrcCovariances& cov, int k);
// The same for several matrices that share one input (and so M): one value per matrix.
std::vector<double> relaxed_objectives(const std::vector<const float*>& W,
                                       const std::vector<int>& d_outs, const std::vector<int>& ks,
                                       int d_in, const LrcCovariances& cov);

// Alg. 2 line 4 (Prop. 3.1): W̃ = (W - UVᵀ) Σxy Σy⁻¹, [d_out x d_in], via Cholesky solves.
std::vector<double> update_quant_target(const float* W, const LowRankFactors& lr, int d_out,
                                        int d_in, const LrcCovariances& cov);

// Alg. 3 (Prop. 3.3): with B = W - Ŵ Σyx Σx⁻¹, Σ = Σ1 + Σ2 - Σ3 = B Σx Bᵀ;
// U = eig_k(Σ), V = BᵀU — the best rank-k fit of B in the Σx metric.
LowRankFactors update_lr(const float* W, const float* w_hat, int d_out, int d_in,
                         const LrcCovariances& cov, int k);

// The first k columns of u and v (eigenvalues stay as they are).
void keep_leading_factors(LowRankFactors& lr, int k, int d_out, int d_in);

}  // namespace lrc
